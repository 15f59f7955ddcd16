/* SPDX-License-Identifier: MIT */
/* mrsnap: save and restore virtual machine RAM. Dispatches to the commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: mrsnap COMMAND [OPTIONS] ...\n"
    "Save the RAM of a virtual machine into an image file and load it back.\n"
    "\n"
    "Commands:\n"
    "  snapshot IMAGE --ram NAME=PATH ...   write RAM blocks into a new image\n"
    "  snapshot --qmp SOCKET [--live] IMAGE save a running QEMU guest whole\n"
    "  restore IMAGE [--ram NAME=PATH ...]  load an image back into RAM files\n"
    "  restore --qmp SOCKET IMAGE           bring a QEMU guest back (-incoming defer)\n"
    "  verify IMAGE                         check every page against its checksum\n"
    "  info IMAGE                           describe an image\n"
    "\n"
    "  -h, --help [COMMAND]  show this help, or COMMAND's (also 'mrsnap help COMMAND'\n"
    "                        and 'mrsnap COMMAND --help')\n"
    "  -V, --version         show the version\n"
    "\n"
    "Exit status: 0 success; 1 the image is damaged or a checksum did not match;\n"
    "2 usage error; 3 the operation failed; 4 (snapshot) the image is in place but\n"
    "its directory could not be synced. See mrsnap(1) and mrsnap-image(5).\n";

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
    {"snapshot", cmd_snapshot},
    {"restore", cmd_restore},
    {"verify", cmd_verify},
    {"info", cmd_info},
};

static int (*find_command(const char *name))(int, char **)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return commands[i].run;
	return NULL;
}

/* Run a command, named in its messages as getopt shows them: "mrsnap restore: ..." */
static int run_command(int (*run)(int, char **), const char *name, int argc, char **argv)
{
	char prog[32];

	snprintf(prog, sizeof(prog), "mrsnap %s", name);
	argv[0] = prog;
	cli_json_setup(name, argc, argv);
	return run(argc, argv);
}

/* "help [COMMAND]", "-h", "--help": the top-level help, or a command's. */
static int help(int argc, char **argv)
{
	static char opt_help[] = "--help";
	char *cmd_argv[] = {NULL, opt_help, NULL};
	int (*run)(int, char **);

	if (argc == 2) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (argc > 3)
		return cli_usage_error(NULL, "'%s' takes one COMMAND at most, not '%s'", argv[1],
				       argv[3]);
	run = find_command(argv[2]);
	if (!run)
		return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
	return run_command(run, argv[2], 2, cmd_argv);
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;
	int (*run)(int, char **);

	if (!cmd)
		return cli_usage_error(NULL, "a command is missing");
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
		return help(argc, argv);
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		if (argc > 2)
			return cli_usage_error(NULL, "'%s' takes no arguments, not '%s'", cmd,
					       argv[2]);
		printf("mrsnap %s (image format version 1)\n", mrs_version_string());
		return EXIT_OK;
	}
	if (cmd[0] == '-')
		return cli_usage_error(NULL, "unknown option '%s' (options follow the COMMAND)",
				       cmd);
	run = find_command(cmd);
	if (!run)
		return cli_usage_error(NULL, "unknown command '%s'", cmd);
	return cli_finish_output(run_command(run, cmd, argc - 1, argv + 1));
}

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
    "  restore IMAGE [--ram NAME=PATH ...]  load an image back into RAM files\n"
    "  verify IMAGE                         check every page against its checksum\n"
    "  info IMAGE                           describe an image\n"
    "\n"
    "  -h, --help       show this help ('mrsnap COMMAND --help' for a command's)\n"
    "  -V, --version    show the version\n"
    "\n"
    "Exit status: 0 success; 1 the image is damaged or a checksum did not match;\n"
    "2 usage error; 3 the operation failed. See mrsnap(1) and mrsnap-image(5).\n";

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
    {"snapshot", cmd_snapshot},
    {"restore", cmd_restore},
    {"verify", cmd_verify},
    {"info", cmd_info},
};

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd)
		return cli_usage_error(NULL, "a command is missing");
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("mrsnap %s (image format version 1)\n", mrs_version_string());
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		char prog[32];

		if (strcmp(cmd, commands[i].name))
			continue;
		/* getopt names the program in its messages: "mrsnap restore: ..." */
		snprintf(prog, sizeof(prog), "mrsnap %s", cmd);
		argv[1] = prog;
		return cli_finish_output(commands[i].run(argc - 1, argv + 1));
	}
	return cli_usage_error(NULL, "unknown command '%s'", cmd);
}

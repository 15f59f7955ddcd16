/* SPDX-License-Identifier: MIT */
/*
 * Text from an image, or from anyone else, made safe for a terminal: an image
 * made elsewhere can hold any bytes in its producer, machine, block names
 * and paths, and printed raw, ESC, CR or a C1 control would drive the user's
 * terminal. Controls are shown as \xNN instead; printable UTF-8 passes.
 */
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not characters. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	/* U+0080..U+009F are the C1 controls (CSI among them), in UTF-8 too. */
	if (cp < 0xa0)
		return 0;
	return n;
}

const char *cli_visible(char *buf, size_t len, const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t o = 0;

	if (!len)
		return "";
	while (*s) {
		size_t n = *s >= 0x20 && *s < 0x7f ? 1 : utf8_len(s);
		char esc[5];

		if (!n) {
			snprintf(esc, sizeof(esc), "\\x%02X", *s);
			n = 4;
			if (o + n >= len)
				break;
			memcpy(buf + o, esc, n);
			s++;
		} else {
			if (o + n >= len)
				break;
			memcpy(buf + o, s, n);
			s += n;
		}
		o += n;
	}
	buf[o] = '\0';
	return buf;
}

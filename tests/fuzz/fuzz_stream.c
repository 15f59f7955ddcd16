/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the control stream reader, on raw stream bytes. */
#include <stddef.h>
#include <stdint.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mrs_stream_info info;
	struct mrs_error err;

	if (mrs_stream_parse(data, size, 0x40000000, &info, &err) == 0)
		mrs_stream_info_free(&info);
	return 0;
}

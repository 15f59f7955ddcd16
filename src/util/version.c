/* SPDX-License-Identifier: MIT */
#include "mrsnap.h"

#define STR_(x) #x
#define STR(x)	STR_(x)

unsigned mrs_version(void)
{
	return MRS_VERSION;
}

const char *mrs_version_string(void)
{
	return STR(MRS_VERSION_MAJOR) "." STR(MRS_VERSION_MINOR) "." STR(MRS_VERSION_PATCH);
}

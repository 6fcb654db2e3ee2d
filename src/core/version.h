/* version.h - the gateway's version and git commit, as string literals.
 *
 * The Makefile writes build/gen/dg_version.h (VERSION: git describe of a
 * v* tag, else the Makefile's BASE_VERSION; COMMIT: git rev-parse) and puts
 * build/gen on the include path; a build without it says "unknown".
 * Used by --version (config.c) and the dronegate_build_info metric.
 */
#ifndef DG_VERSION_H
#define DG_VERSION_H

#if defined(__has_include)
#if __has_include("dg_version.h")
#include "dg_version.h"
#endif
#endif
#ifndef DG_VERSION
#define DG_VERSION "unknown"
#endif
#ifndef DG_COMMIT
#define DG_COMMIT "unknown"
#endif

#endif

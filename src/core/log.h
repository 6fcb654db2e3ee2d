/* log.h - leveled logging to stderr, one line per event, thread-safe
 * (a single fprintf per line; stderr is unbuffered). */
#ifndef DG_LOG_H
#define DG_LOG_H

enum { DG_LOG_DEBUG = 0, DG_LOG_INFO = 1, DG_LOG_WARN = 2, DG_LOG_ERROR = 3 };

extern int dg_log_level;
/* This gateway's name (--instance): in every log line, dronegate_build_info
 * and the state of the drones connected here. Set once by main before any
 * thread starts; empty = left out. */
extern char dg_instance[65];

void dg_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define dg_debug(...) do { if (dg_log_level <= DG_LOG_DEBUG) dg_log(DG_LOG_DEBUG, __VA_ARGS__); } while (0)
#define dg_info(...)  dg_log(DG_LOG_INFO, __VA_ARGS__)
#define dg_warn(...)  dg_log(DG_LOG_WARN, __VA_ARGS__)
#define dg_error(...) dg_log(DG_LOG_ERROR, __VA_ARGS__)

#endif

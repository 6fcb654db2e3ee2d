/* sinkcmd.h - `dronegate sink` / `dronegate-sink` (sinkcmd.c): the queue
 * consumer that stores what gateways published with --queue. */
#ifndef DG_QUEUE_SINKCMD_H
#define DG_QUEUE_SINKCMD_H

/* Flags from argv[first]; returns the process exit code. */
int dg_sink_main(int argc, char **argv, int first);

#endif

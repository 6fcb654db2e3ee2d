# AMQP (RabbitMQ) publisher and consumer of the queue layer (issue 9):
# src/queue/amqp.c, src/queue/amqp_uri.c with Debian librabbitmq-dev
# (rabbitmq-c 0.11, headers /usr/include/amqp*.h).
#
#   build/amqp-drive     tests/amqp/drive.c: the publisher and consumer ops
#                        against a real broker, without the gateway
#   build/bench/amqp_plain  bench/amqp_plain.c: a plain rabbitmq-c publisher
#                        with confirms (the limit for bench_queue_amqp.sh)
LDLIBS += -lrabbitmq


$(B)/amqp-drive: tests/amqp/drive.c $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libdronegate-core.a $(LDLIBS)

EXTRA_BIN        += $(B)/amqp-drive
INTEGRATION_DEPS += $(B)/amqp-drive

# Kafka (issue 9): the publisher and consumer in src/queue/kafka.c link
# librdkafka (Debian librdkafka-dev, scripts/deps.d/kafka.list).
# build/kafka-mockcluster: librdkafka's in-process mock cluster (3 brokers)
# for the integration tests (tests/kafka/mockcluster.c); no Kafka broker is
# packaged in Debian.
LDLIBS += -lrdkafka

INTEGRATION_DEPS += $(B)/kafka-mockcluster

$(B)/kafka-mockcluster: tests/kafka/mockcluster.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lrdkafka -lpthread

# `dronegate-sink` (CONTRACT.md) is the same binary: main() dispatches on
# argv[0] (and on `dronegate sink`).
EXTRA_BIN += $(B)/dronegate-sink
$(B)/dronegate-sink: $(B)/dronegate
	ln -sf dronegate $@

# `make install` also puts the dronegate-sink name next to dronegate
install: install-dronegate-sink
.PHONY: install-dronegate-sink
install-dronegate-sink:
	install -d $(DESTDIR)$(BINDIR)
	ln -sf dronegate $(DESTDIR)$(BINDIR)/dronegate-sink

# gRPC uplink and the dronegate.pb.v1 subprotocol (issue 10).
#
# protobuf-c 1.4.1 (Debian 12) refuses proto3 `optional`, so the C code is
# generated from a proto2 copy of proto/dronegate/v1/telemetry.proto with the
# same field numbers and wire format (docs/grpc-notes.md says why that is
# exact). The generated files live in build/gen and join the core library.
PB_PROTO   := proto/dronegate/v1/telemetry.proto
PB_GEN_C   := $(B)/gen/dronegate/v1/telemetry.pb-c.c
PB_GEN_H   := $(B)/gen/dronegate/v1/telemetry.pb-c.h
PB_PROTO2  := $(B)/gen/proto2/dronegate/v1/telemetry.proto

LDLIBS   += -lnghttp2 -lprotobuf-c
LIBSRC   += $(PB_GEN_C)
OBJ      += $(B)/obj/$(PB_GEN_C:.c=.o)
ASAN_OBJ += $(B)/asan/$(PB_GEN_C:.c=.o)

$(PB_PROTO2): $(PB_PROTO) mk/grpc.mk
	@mkdir -p $(dir $@)
	sed -e 's/^syntax = "proto3";/syntax = "proto2";/' \
	    -e 's/^  \(double\|float\|uint64\|int64\|string\|Position\|TelemetryFrame\) /  optional \1 /' $< > $@

$(PB_GEN_C) $(PB_GEN_H) &: $(PB_PROTO2)
	protoc-c --c_out=$(B)/gen -I$(B)/gen/proto2 $(PB_PROTO2)

# every object may include the generated header: generate it first
$(OBJ) $(ASAN_OBJ) $(B)/obj/$(MAIN:.c=.o) $(B)/asan/$(MAIN:.c=.o): | $(PB_GEN_H)
$(FUZZ_BIN): $(PB_GEN_H)


# libdronegate: the drone-side client library (issue 13). Sources live in
# libclient/ (not src/*/, which is the gateway's core library); the public
# header is include/dronegate/client.h. docs/client-notes.md has the design.
#
#   build/libdronegate.a, build/libdronegate.so   (also built by `all`)
#   build/examples/drone                          examples/drone.c against the library
#   make install-client PREFIX=... DESTDIR=...    lib, header, dronegate.pc
CLIENT_SRC      := $(sort $(wildcard libclient/*.c))
CLIENT_OBJ      := $(CLIENT_SRC:%.c=$(B)/client/%.o)
CLIENT_ASAN_OBJ := $(CLIENT_SRC:%.c=$(B)/client-asan/%.o)
CLIENT_CFLAGS   := -std=gnu11 -Wall -Wextra -Wno-unused-parameter -pthread -D_GNU_SOURCE \
                   -Iinclude -Ilibclient -fPIC -fvisibility=hidden
CLIENT_LIBS     := -lssl -lcrypto -lnghttp2 -lpthread -lm
CLIENT_SOVER    := 0
CLIENT_UNIT      := $(filter $(B)/tests/test_client_%,$(UNIT_BIN))
CLIENT_UNIT_ASAN := $(filter $(B)/tests-asan/test_client_%,$(UNIT_ASAN))
CLIENT_FUZZ      := $(filter $(B)/fuzz/fuzz_client_%,$(FUZZ_BIN))
LIBDIR          ?= $(PREFIX)/lib
INCLUDEDIR      ?= $(PREFIX)/include
PKGCONFIGDIR    ?= $(LIBDIR)/pkgconfig

EXTRA_BIN        += $(B)/libdronegate.a $(B)/libdronegate.so $(B)/examples/drone $(B)/examples/minimal
INTEGRATION_DEPS += $(B)/examples/drone

$(B)/client/%.o: %.c include/dronegate/client.h libclient/internal.h
	@mkdir -p $(dir $@)
	$(CC) -O2 -g $(CLIENT_CFLAGS) -c $< -o $@

$(B)/client-asan/%.o: %.c include/dronegate/client.h libclient/internal.h
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(CLIENT_CFLAGS) $(SAN) -c $< -o $@

$(B)/libdronegate.a: $(CLIENT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libdronegate-asan.a: $(CLIENT_ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libdronegate.so: $(CLIENT_OBJ)
	$(CC) -shared -Wl,-soname,libdronegate.so.$(CLIENT_SOVER) -Wl,--no-undefined -o $@ $^ $(CLIENT_LIBS)

$(B)/examples/%: examples/%.c include/dronegate/client.h $(B)/libdronegate.a
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Iinclude -o $@ $< $(B)/libdronegate.a $(CLIENT_LIBS)

# unit tests of the client (tests/unit/test_client_*.c) link the client library
# (and the gateway's core, so a test can read the client's bytes back with the
# gateway's own decoder: test_client_queue.c, protobuf samples)
$(CLIENT_UNIT): $(B)/tests/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate.a $(B)/libdronegate-core.a
	@mkdir -p $(dir $@)
	$(CC) -O2 -g $(CLIENT_CFLAGS) -Isrc -Itests/unit -o $@ $< $(B)/libdronegate.a $(B)/libdronegate-core.a \
	  $(CLIENT_LIBS) $(LDLIBS)

$(CLIENT_UNIT_ASAN): $(B)/tests-asan/%: tests/unit/%.c tests/unit/check.h $(B)/libdronegate-asan.a $(B)/libdronegate-core-asan.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g $(CLIENT_CFLAGS) $(SAN) -Isrc -Itests/unit -o $@ $< $(B)/libdronegate-asan.a \
	  $(B)/libdronegate-core-asan.a $(CLIENT_LIBS) $(LDLIBS)

# libFuzzer target for what the client parses (the gateway's messages)
$(CLIENT_FUZZ): $(B)/fuzz/%: fuzz/%.c $(CLIENT_SRC) include/dronegate/client.h libclient/internal.h
	@mkdir -p $(dir $@)
	$(CLANG) -O1 -g -std=gnu11 -D_GNU_SOURCE -Iinclude -Ilibclient -fsanitize=fuzzer,address,undefined \
	  -fno-sanitize-recover=undefined -o $@ $< libclient/msg.c libclient/pb.c libclient/queue.c libclient/fileq.c -lm

.PHONY: client install-client
client: $(B)/libdronegate.a $(B)/libdronegate.so $(B)/examples/drone $(B)/examples/minimal

# rewritten when PREFIX/LIBDIR/INCLUDEDIR change (like dg_version.h)
$(B)/dronegate.pc: FORCE
	@mkdir -p $(dir $@)
	@printf 'prefix=%s\nexec_prefix=$${prefix}\nlibdir=%s\nincludedir=%s\n\nName: dronegate\nDescription: libdronegate, the drone-side client of the dronegate telemetry gateway\nVersion: %s\nRequires.private: libssl libcrypto libnghttp2\nLibs: -L$${libdir} -ldronegate\nLibs.private: -lpthread -lm\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(LIBDIR)' '$(INCLUDEDIR)' '$(BASE_VERSION)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

install-client: $(B)/libdronegate.a $(B)/libdronegate.so $(B)/dronegate.pc
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/dronegate $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(B)/libdronegate.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/libdronegate.so $(DESTDIR)$(LIBDIR)/libdronegate.so.$(CLIENT_SOVER)
	ln -sf libdronegate.so.$(CLIENT_SOVER) $(DESTDIR)$(LIBDIR)/libdronegate.so
	install -m 644 include/dronegate/client.h $(DESTDIR)$(INCLUDEDIR)/dronegate/
	install -m 644 $(B)/dronegate.pc $(DESTDIR)$(PKGCONFIGDIR)/

# the example linked against the ASan+UBSan library (integration-asan runs it)
$(B)/examples/drone-asan: examples/drone.c include/dronegate/client.h $(B)/libdronegate-asan.a
	@mkdir -p $(dir $@)
	$(CC) -O1 -g -std=gnu11 -Wall -Wextra $(SAN) -Iinclude -o $@ $< $(B)/libdronegate-asan.a $(CLIENT_LIBS)

INTEGRATION_DEPS += $(B)/examples/drone-asan

# `make install` installs the client library too
install: install-client

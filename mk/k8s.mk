# mk/k8s.mk - the container image (issue 12 section 3). Not in `make test`
# (minutes, needs root and podman); deploy/k8s is validated in `make test` by
# tests/integration/test_k8s_manifests.py.
#
#   make image          base image (deploy/make-base-image.sh, debootstrap) when
#                       missing, web/vendor (web/build.sh), then podman build of
#                       deploy/Containerfile -> $(IMAGE)
#   make image-check    start $(IMAGE) read-only as PID 1, wait for HEALTHCHECK
#                       healthy and /healthz, podman stop: drained, exit 0
#                       (deploy/check-image.sh)
#
# CONTAINER_FLAGS: global podman flags. runc when it is installed: on the
# machine this was written on crun refuses ("cgroups in hybrid mode not
# supported"). IMAGE_ULIMITS: the limits of the build's RUN steps and of the
# check's container; podman's defaults (nofile 1048576) are above the hard
# limits there ("setrlimit RLIMIT_NOFILE: Operation not permitted").
IMAGE           ?= localhost/dronegate:latest
BASE_IMAGE      ?= localhost/dronegate-base:bookworm-slim
CONTAINER_FLAGS ?= $(if $(shell command -v runc 2>/dev/null),--runtime runc)
IMAGE_ULIMITS   ?= --ulimit nofile=16384:16384 --ulimit nproc=4096:4096

.PHONY: image image-base image-check

image-base:
	@podman image exists $(BASE_IMAGE) || IMAGE=$(BASE_IMAGE) deploy/make-base-image.sh

image: image-base
	@web/build.sh
	podman $(CONTAINER_FLAGS) build -f deploy/Containerfile --format docker \
	  --ignorefile deploy/containerignore $(IMAGE_ULIMITS) \
	  --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
	  -t $(IMAGE) .

image-check:
	@IMAGE=$(IMAGE) CONTAINER_FLAGS="$(CONTAINER_FLAGS)" IMAGE_ULIMITS="$(IMAGE_ULIMITS)" deploy/check-image.sh

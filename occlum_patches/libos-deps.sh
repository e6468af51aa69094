# shellcheck shell=bash
# Sourced by deps.sh and check.sh: the submodules (deps/NAME) Occlum's src/libos
# builds from, directly or through another one (itoa-sgx, via serde-json-sgx's
# patch). grpc-rust is only for tools.
# shellcheck disable=SC2034  # used by the scripts that source this file
LIBOS_DEPS=(rust-sgx-sdk sefs serde-sgx itoa-sgx serde-json-sgx ringbuf resolv-conf io-uring mlsdisk ext2-rs)

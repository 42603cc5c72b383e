#!/usr/bin/env bats
# Template caches: vzpkg create, update, list, remove; failures leave the
# old cache and no temporary files.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	export VZ_ROOT="$BATS_TEST_TMPDIR/root"
}

teardown() {
	rm -rf "$VZ_ROOT"
}

@test "vzpkg create cache busybox builds a cache with a working shell, init and ip" {
	run vzpkg create cache busybox
	[ "$status" -eq 0 ]
	[ -f "$VZ_ROOT/vz/template/cache/busybox.tar.zst" ]
	[ -f "$VZ_ROOT/vz/template/busybox/config" ]
	tree="$BATS_TEST_TMPDIR/tree"
	mkdir "$tree"
	tar --zstd -xf "$VZ_ROOT/vz/template/cache/busybox.tar.zst" -C "$tree"
	[ -x "$tree/sbin/init" ]
	run chroot "$tree" /bin/sh -c 'ip link show lo && echo shell-ok'
	[ "$status" -eq 0 ]
	[[ "$output" == *"shell-ok"* ]]
	[ "$(stat -c %a "$tree/tmp")" = 1777 ]
}

@test "vzpkg list shows caches and uncached templates; remove deletes a cache" {
	vzpkg create cache busybox
	mkdir -p "$VZ_ROOT/vz/template/other"
	echo 'BUILDER="busybox"' >"$VZ_ROOT/vz/template/other/config"
	run vzpkg list
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^NAME\ +SIZE\ +DATE$ ]]
	[[ "$output" =~ busybox\ +[0-9]+K ]]
	[[ "$output" =~ other\ +-\ +not\ cached ]]
	run vzpkg remove cache busybox
	[ "$status" -eq 0 ]
	[ ! -e "$VZ_ROOT/vz/template/cache/busybox.tar.zst" ]
	run --separate-stderr vzpkg remove cache busybox
	[ "$status" -eq 91 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "creating an existing cache is refused; update rebuilds it" {
	vzpkg create cache busybox
	run --separate-stderr vzpkg create cache busybox
	[ "$status" -eq 44 ]
	[[ "$stderr" == *"use vzpkg update cache busybox"* ]]
	before=$(stat -c %Y.%s "$VZ_ROOT/vz/template/cache/busybox.tar.zst")
	sleep 1.1 # mtime has a granularity of one second on some file systems
	run vzpkg update cache busybox
	[ "$status" -eq 0 ]
	[ "$(stat -c %Y.%s "$VZ_ROOT/vz/template/cache/busybox.tar.zst")" != "$before" ]
}

@test "a failed build leaves no temporary files and keeps the old cache" {
	mkdir -p "$VZ_ROOT/vz/template/broken"
	echo 'BUILDER="busybox"' >"$VZ_ROOT/vz/template/broken/config"
	vzpkg create cache broken
	old=$(sha256sum <"$VZ_ROOT/vz/template/cache/broken.tar.zst")
	printf '#!/bin/sh\necho post-install exploded >&2\nexit 1\n' >"$VZ_ROOT/vz/template/broken/post-install"
	chmod +x "$VZ_ROOT/vz/template/broken/post-install"
	run --separate-stderr vzpkg update cache broken
	[ "$status" -ne 0 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *"post-install exploded"* ]]
	[ "$(sha256sum <"$VZ_ROOT/vz/template/cache/broken.tar.zst")" = "$old" ]
	run ls -A "$VZ_ROOT/vz/template/cache"
	[ "$output" = "broken.tar.zst" ]
}

@test "an unknown template or a bad name gives one error line" {
	run --separate-stderr vzpkg create cache no-such-thing
	[ "$status" -eq 91 ]
	[ "$stderr" = "vzpkg: Template no-such-thing not found: no metadata in $VZ_ROOT/vz/template/no-such-thing" ]
	for bad in ../etc a/b .hidden ''; do
		run --separate-stderr vzpkg create cache "$bad"
		[ "$status" -eq 20 ]
		[ "${#stderr_lines[@]}" -eq 1 ]
	done
	run --separate-stderr vzpkg frobnicate
	[ "$status" -eq 20 ]
	[ ! -e "$VZ_ROOT/vz/template/cache" ] || [ -z "$(ls -A "$VZ_ROOT/vz/template/cache")" ]
}

#!/usr/bin/env bash
# Runs a command in a fresh Debian 12 (bookworm) root file system, the way a new user's machine
# has it: a minimal system with apt, git, make, sudo and ca-certificates, nothing else. An
# install step that only works because a package happens to be on this machine fails here.
#
#   scripts/fresh-root.sh [COMMAND]        COMMAND defaults to 'make demo && make test'
#
# Builds the root with mmdebstrap (installed on the host if missing), clones the committed HEAD
# of the repository it is run from into /src (commit first: the work tree is not copied), mounts
# proc, sys, a private /dev (a tmpfs with null zero full random urandom tty, and the fd,
# stdin, stdout and stderr links), devpts (a new
# instance) and /dev/shm, runs `make deps` (timed) and then COMMAND in /src with a clean
# environment (PATH, HOME=/root, LANG=C.UTF-8, TERM=dumb, and CI if set). Afterwards, whatever
# happened (error, Ctrl-C, SIGTERM), it kills the processes left running in the root, unmounts
# everything under it and deletes it: it only deletes inside its own root, never crosses a mount
# point (find -xdev) and refuses to delete while anything is still mounted below the root.
# Needs root. Exit status: COMMAND's (or `make deps`'); 2 when the root cannot be set up.
#
# Environment:
#   FRESH_ROOT_CACHE   host download cache, default /var/cache/edgetrust-fresh-root. Its
#                      archives/ is the root's /var/cache/apt/archives (mmdebstrap's downloads
#                      and the install step's): .deb names carry the package version, so a
#                      cached file is reused exactly while that version is current; versions no
#                      longer in the archive are pruned (apt-get autoclean) after each run. Only
#                      the first run pays for downloads. One run at a time per cache (flock).
#   FRESH_ROOT_REPO    repository to clone (default: the one this script is run from)
#   FRESH_ROOT_REV     commit to check out (default HEAD of FRESH_ROOT_REPO)
#   FRESH_ROOT_MIRROR  Debian mirror URL (default: the one the host's apt sources use)
#   FRESH_ROOT_WORKDIR where the root is built (default ${TMPDIR:-/tmp})
#   FRESH_ROOT_KEEP=1  keep the root after the run (mounts are still removed)
set -uo pipefail
# All in one { } block: bash reads it whole before running it, so editing or updating this
# file while a run is going on cannot change what that run does.
{
t0=$SECONDS
say() { echo "fresh-root: $*"; }
die() { say "$*" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || die "run as root (it builds a root file system and mounts into it)"
repo=${FRESH_ROOT_REPO:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null)} ||
	die "not in a git checkout; set FRESH_ROOT_REPO"
rev=$(git -C "$repo" rev-parse --verify "${FRESH_ROOT_REV:-HEAD}^{commit}" 2>/dev/null) ||
	die "no commit ${FRESH_ROOT_REV:-HEAD} in $repo"
cmd=${1:-"make demo && make test"}
cache=${FRESH_ROOT_CACHE:-/var/cache/edgetrust-fresh-root}

if ! command -v mmdebstrap >/dev/null; then
	say "installing mmdebstrap on the host"
	{ DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			mmdebstrap gpgv debian-archive-keyring >/dev/null; } || die "cannot install mmdebstrap"
fi

# The mirror: the Debian archive the host's own apt sources use (one-line and deb822 formats),
# so the root reaches exactly what the host reaches.
host_mirror() {
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
		2>/dev/null | awk '
		/^[[:space:]]*deb[[:space:]]/ { for (i = 2; i < NF; i++) if ($i ~ /^[a-z]+:\/\// && $(i + 1) == "bookworm") { print $i; exit } }
		/^URIs:/ { uri = $2 } /^Suites:/ { if (uri != "" && $0 ~ /[[:space:]]bookworm([[:space:]]|$)/) { print uri; exit } }
		/^[[:space:]]*$/ { uri = "" }' | sed 's:/*$::'
}
mirror=${FRESH_ROOT_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${mirror%/debian}/debian-security
[ "$security" = "$mirror/debian-security" ] && security=http://deb.debian.org/debian-security

mkdir -p "$cache/archives/partial" || die "cannot create the cache $cache"
exec 9>"$cache/.lock"
flock -w 3600 9 || die "cache $cache is locked by another run for over an hour"

work=$(mktemp -d "${FRESH_ROOT_WORKDIR:-${TMPDIR:-/tmp}}/fresh-root.XXXXXX") || die "mktemp failed"
root=$work/root
mkdir "$root"

# Mount points under the root, deepest first, from the kernel's own table.
mounts_under() {
	awk -v r="$root" '{ m = $5; gsub(/\\040/, " ", m); if (m == r || index(m, r "/") == 1) print m }' \
		/proc/self/mountinfo | sort -r
}
kill_left() {
	local pid left="" round
	for round in 1 2 3 4 5; do
		left=""
		for pid in /proc/[0-9]*; do
			pid=${pid#/proc/}
			[ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] || continue
			left="$left $pid($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-50))"
			kill -KILL "$pid" 2>/dev/null
		done
		[ -z "$left" ] && return 0
		[ "$round" = 1 ] && say "processes left running in the root (killed):$left"
		sleep 0.5
	done
}
# Long steps run in the background and are waited for, so that INT/TERM reach our traps at
# once instead of after the step; the clean-up stops the step first.
child=
step() {
	"$@" &
	child=$!
	wait "$child"
	local rc=$?
	child=
	return $rc
}
cleaned=0
cleanup() {
	[ "$cleaned" = 1 ] && return
	cleaned=1
	trap '' INT TERM
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	kill_left
	local m
	for m in $(mounts_under); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	for m in $(mounts_under); do umount -l "$m" 2>/dev/null; done
	if [ -n "$(mounts_under)" ]; then
		say "NOT deleting $work: still mounted below it: $(mounts_under | tr '\n' ' ')" >&2
		return
	fi
	if [ "${FRESH_ROOT_KEEP:-0}" = 1 ]; then
		say "kept the root in $root"
		return
	fi
	# Only ever inside our own root: -xdev never crosses into another file system.
	find "$root" -xdev -mindepth 1 -delete 2>/dev/null
	rmdir "$root" "$work" 2>/dev/null || say "could not remove all of $work" >&2
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

debs() { find "$cache/archives" -maxdepth 1 -name '*.deb' | wc -l; }
debs_before=$(debs)
say "building a minimal Debian 12 root in $root (mirror $mirror, cache $cache: $debs_before .deb files)"
tb=$SECONDS
# The cache is bind-mounted as the root's apt archive while mmdebstrap downloads, and kept
# (essential/unlink, cleanup/apt/cache skipped) so the next run finds the same .deb files.
step mmdebstrap --quiet --variant=apt --include=ca-certificates,git,make,sudo \
	--skip=download/empty,essential/unlink,cleanup/apt/cache,cleanup/apt/lists \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives" && mount --bind '"'$cache/archives'"' "$1/var/cache/apt/archives"' \
	--customize-hook='umount "$1/var/cache/apt/archives"' \
	bookworm "$root" \
	"deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
	"deb $security bookworm-security main" || die "mmdebstrap failed"
say "root built in $((SECONDS - tb)) s"

mnt() { # TYPE-or-bind SOURCE TARGET [OPTIONS]
	mkdir -p "$3" || die "mkdir $3 failed"
	if [ "$1" = bind ]; then
		mount --bind "$2" "$3" || die "bind mount $2 on $3 failed"
	else
		mount -t "$1" -o "${4:-defaults}" "$2" "$3" || die "mount $1 on $3 failed"
	fi
}
mnt proc proc "$root/proc"
mnt sysfs sys "$root/sys" ro,nosuid,nodev,noexec
mnt tmpfs dev "$root/dev" mode=755,nosuid
for n in null zero full random urandom tty; do
	cp -a "/dev/$n" "$root/dev/$n" || die "cannot create $root/dev/$n"
done
# The links every Debian system's /dev has (udev and systemd make them): /dev/stdout and friends.
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mnt devpts devpts "$root/dev/pts" newinstance,ptmxmode=0666,mode=620,gid=5
ln -s pts/ptmx "$root/dev/ptmx"
mnt tmpfs shm "$root/dev/shm" mode=1777,nosuid,nodev
mnt bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null

git clone -q --no-checkout "$repo" "$root/src" && git -C "$root/src" checkout -q --detach "$rev" ||
	die "cannot clone $rev of $repo"
say "cloned $repo at $(git -C "$root/src" log -1 --format='%h %s' | cut -c1-70)"

in_root() {
	local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
		LANG=C.UTF-8 TERM=dumb)
	[ -n "${CI+x}" ] && env+=("CI=$CI")
	step chroot "$root" /usr/bin/env -i "${env[@]}" bash -c "cd /src && $1" </dev/null 2>&1
}
in_root "echo \"fresh-root: running inside $root (Debian \$(cat /etc/debian_version), \$(dpkg-query -W | wc -l) packages)\""
ti=$SECONDS
in_root "make deps"
rc=$?
say "install step (make deps) took $((SECONDS - ti)) s, exit status $rc"
if [ "$rc" -eq 0 ]; then
	say "running: $cmd"
	tc=$SECONDS
	in_root "$cmd"
	rc=$?
	say "command took $((SECONDS - tc)) s, exit status $rc"
fi
# What the command left behind is a defect of the command (tests must clean up after themselves).
left=$(find "$root/tmp" "$root/var/tmp" -mindepth 1 -maxdepth 1 -name 'et-*' 2>/dev/null | wc -l)
say "et-* temporary directories left in the root's /tmp and /var/tmp: $left"
# Keep the cache to what the archive still has: drops superseded versions, keeps current ones.
in_root "apt-get -qq autoclean" >/dev/null
debs_after=$(debs)
say "cache: $debs_after .deb files, $(du -sm "$cache/archives" | cut -f1) MiB ($((debs_after - debs_before)) more than before this run)"
say "total $((SECONDS - t0)) s"
exit "$rc"
}

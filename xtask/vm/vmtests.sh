# Runs inside the vmtest guest (pure cgroup v2). Each check prints "VMTEST PASS name" or
# "VMTEST FAIL name: why"; the last line is "VMTEST DONE pass=N fail=M".
R=/rootfs
G=/gocker
# The guest has neither nft nor the bridge/veth modules loaded: these checks are about cgroups.
export GOCKER_NETWORK=none
pass=0
fail=0
ok() { echo "VMTEST PASS $1"; pass=$((pass+1)); }
bad() { echo "VMTEST FAIL $1: $2"; fail=$((fail+1)); }
children() { ls -d /sys/fs/cgroup/gocker/*/ 2>/dev/null | wc -l; }

if /cgtest --ignored --test-threads 1 >/tmp/cg.log 2>&1; then ok gocker-cgroups-tests; else cat /tmp/cg.log; bad gocker-cgroups-tests "see the log above"; fi

out=$($G run --rm --rootfs $R sh -c 'echo plain') && [ "$out" = plain ] && ok run-without-limits || bad run-without-limits "$out"

# The dynamically linked gocker found its libseccomp in the guest, and the default filter is on.
out=$($G run --rm --rootfs $R sh -c 'grep "^Seccomp:" /proc/self/status; mount -t proc p /mnt && test -d /mnt/1 && echo mounted' 2>&1)
echo "$out" | grep -q "Seccomp:.2" && echo "$out" | grep -q mounted && ok seccomp-default-filter || bad seccomp-default-filter "$out"

# A private cgroup2 view: /sys/fs/cgroup inside is the container's own cgroup (its root holds only
# the container's processes and carries its limit).
out=$($G run --rm --memory 48m --rootfs $R sh -c 'cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; wc -l < /sys/fs/cgroup/cgroup.procs; grep " /sys/fs/cgroup " /proc/self/mountinfo' 2>&1)
if echo "$out" | grep -qx '0::/' && echo "$out" | grep -qx 50331648 && echo "$out" | grep -q ' - cgroup2 '; then ok cgroup-private-view; else bad cgroup-private-view "$out"; fi

# --memory 32m with 100 MiB allocated: OOM-killed, exit 137, reported from memory.events.
$G run --rm --memory 32m --rootfs $R sh -c 'x=$(head -c 104857600 /dev/zero | tr "\000" a); echo survived ${#x}' >/tmp/out 2>/tmp/err
rc=$?
if [ $rc = 137 ] && grep -q "OOM killer" /tmp/err && grep -qE "oom_kill [1-9]" /tmp/err && ! grep -q survived /tmp/out; then
    ok memory-oom-137
else
    bad memory-oom-137 "rc=$rc out=$(cat /tmp/out) err=$(cat /tmp/err) dmesg: $(dmesg | grep -iE 'killed process|oom' | tail -n 4)"
fi
[ "$(children)" = 0 ] && ok cgroup-removed-after-oom || bad cgroup-removed-after-oom "$(ls /sys/fs/cgroup/gocker)"

# --pids-limit 20: a child shell forks sleeps until the 21st process fails to fork (the child,
# whose fork failed, exits); the container's shell keeps running and can fork again. /tmp is a
# tmpfs of the container's: on this guest's kernel (Debian 12's 6.1) a copy-up from the
# idmapped lower of a rootful copy-on-write root fails with EOVERFLOW (docs/storage-roots.md).
$G run --rm --pids-limit 20 --tmpfs /tmp --rootfs $R sh -c 'sh -c "i=0; while [ \$i -lt 25 ]; do i=\$((i+1)); sleep 30 & done" 2>/tmp/forkerr; set -- /proc/[0-9]*; echo procs=$#; cat /tmp/forkerr; sleep 0 && echo alive' >/tmp/out 2>/tmp/err
rc=$?
if [ $rc = 0 ] && grep -q '^procs=19$' /tmp/out && grep -q "can't fork" /tmp/out && grep -q '^alive$' /tmp/out; then
    ok pids-limit-20
else
    bad pids-limit-20 "rc=$rc out=$(cat /tmp/out) err=$(head -c 300 /tmp/err)"
fi

# --cpus 0.5 with a busy loop: CPU use over 3 s between 0.4 and 0.6 of one CPU (cgroup cpu.stat).
$G run --rm --cpus 0.5 --rootfs $R sh -c 'while :; do :; done' >/dev/null 2>&1 &
gpid=$!
sleep 1
cg=$(ls -d /sys/fs/cgroup/gocker/*/ | head -n1)
u1=$(awk '/^usage_usec/ {print $2}' ${cg}cpu.stat)
t1=$(awk '{print $1}' /proc/uptime)
sleep 3
u2=$(awk '/^usage_usec/ {print $2}' ${cg}cpu.stat)
t2=$(awk '{print $1}' /proc/uptime)
ratio=$(awk -v u1=$u1 -v u2=$u2 -v t1=$t1 -v t2=$t2 'BEGIN { printf "%.3f", (u2-u1)/1e6/(t2-t1) }')
echo "cpus 0.5: measured $ratio CPUs over $(awk -v a=$t1 -v b=$t2 'BEGIN{print b-a}') s"
if awk -v r=$ratio 'BEGIN { exit !(r >= 0.4 && r <= 0.6) }'; then ok cpus-0.5; else bad cpus-0.5 "ratio $ratio"; fi

# SIGKILL of gocker mid-run: the rings die with it; the next gocker invocation removes the cgroup.
kill -9 $gpid
sleep 1
$G ps -a >/dev/null
[ "$(children)" = 0 ] && ok cgroup-removed-after-sigkill || bad cgroup-removed-after-sigkill "$(ls /sys/fs/cgroup/gocker)"

# gocker stats: live usage from the container's cgroup (created even without limits on a v2 host).
$G run --rm --name stats1 --memory 64m --rootfs $R sh -c 'sleep 3; true' >/dev/null 2>&1 &
spid=$!
sleep 1
$G stats --no-stream stats1 >/tmp/stats 2>&1
if awk '$2 == "stats1" && $NF == 2 && / \/ 64MiB/ { found = 1 } END { exit !found }' /tmp/stats; then ok stats; else bad stats "$(cat /tmp/stats)"; fi
wait $spid
[ "$(children)" = 0 ] && ok cgroup-removed-after-run || bad cgroup-removed-after-run "$(ls /sys/fs/cgroup/gocker)"

# gocker pause / unpause: the cgroup v2 freezer. A busy loop's CPU time (cpu.stat usage_usec of
# its cgroup) stands still while it is paused and advances again after unpause; ps says paused.
usage() { awk '/^usage_usec/ {print $2}' ${1}cpu.stat; }
$G run -d --name pz --rootfs $R sh -c 'while :; do :; done' >/dev/null 2>/tmp/pz.err
sleep 1
cg=$(ls -d /sys/fs/cgroup/gocker/*/ | head -n1)
if $G pause pz >/tmp/pz.out 2>&1 && grep -qx "frozen 1" ${cg}cgroup.events; then
    # docker's words: State "paused", Status "Up N seconds (Paused)".
    st=$($G ps --format '{{.Names}} {{.State}}' | awk '$1 == "pz" {print $2}')
    $G ps --format '{{.Names}} {{.Status}}' | grep -q '^pz Up .* (Paused)$' || st="$st/no-(Paused)-status"
    u1=$(usage $cg); sleep 2; u2=$(usage $cg)
    $G unpause pz >>/tmp/pz.out 2>&1
    u3=$(usage $cg); sleep 2; u4=$(usage $cg)
    echo "pause: CPU time $((u2-u1)) us in 2 s paused, $((u4-u3)) us in 2 s after unpause"
    if [ "$st" = paused ] && [ $((u2-u1)) -lt 50000 ] && [ $((u4-u3)) -gt 500000 ] && grep -qx "frozen 0" ${cg}cgroup.events; then
        ok pause-stops-cpu
    else
        bad pause-stops-cpu "ps=$st paused=$((u2-u1))us thawed=$((u4-u3))us $(cat ${cg}cgroup.events)"
    fi
else
    bad pause-stops-cpu "$(cat /tmp/pz.err /tmp/pz.out; cat ${cg}cgroup.events)"
fi
# stop of a paused container: the signal, then the thaw (as docker); then the cgroup is gone.
$G pause pz >/dev/null 2>&1
$G stop -t 1 pz >/dev/null 2>&1 && $G rm pz >/dev/null 2>&1
[ "$(children)" = 0 ] && ok stop-paused-removes-cgroup || bad stop-paused-removes-cgroup "$(ls /sys/fs/cgroup/gocker) $($G ps -a)"

# gocker update: new limits written into a running container's cgroup; a bad one refused with
# nothing changed.
$G run -d --name up1 --rootfs $R sleep 300 >/dev/null 2>/tmp/up.err
sleep 1
cg=$(ls -d /sys/fs/cgroup/gocker/*/ | head -n1)
if $G update --memory 40m --pids-limit 25 --cpus 0.5 up1 >/tmp/up.out 2>&1; then
    mem=$(cat ${cg}memory.max); pids=$(cat ${cg}pids.max); cpu=$(cat ${cg}cpu.max)
    $G update --memory 1k up1 >/dev/null 2>&1; rc=$?
    mem2=$(cat ${cg}memory.max)
    if [ "$mem" = 41943040 ] && [ "$pids" = 25 ] && [ "$cpu" = "50000 100000" ] && [ $rc = 125 ] && [ "$mem2" = 41943040 ]; then
        ok update-memory-max
    else
        bad update-memory-max "memory.max=$mem pids.max=$pids cpu.max=$cpu bad-update-rc=$rc after=$mem2"
    fi
else
    bad update-memory-max "$(cat /tmp/up.err /tmp/up.out)"
fi
$G rm -f up1 >/dev/null 2>&1
[ "$(children)" = 0 ] && ok cgroup-removed-after-update || bad cgroup-removed-after-update "$(ls /sys/fs/cgroup/gocker)"

# gocker-oci on cgroup v2: linux.cgroupsPath, pause/resume (the freezer), update (resources), and
# delete removing the cgroup.
O=/gocker-oci
B=/tmp/bundle
mkdir -p $B && ln -s $R $B/rootfs
$O spec --bundle $B
sed -i 's/"terminal": true/"terminal": false/; s/^      "sh"$/      "sleep", "300"/; s|^  "linux": {$|  "linux": { "cgroupsPath": "/oci-test/c1",|' $B/config.json
if $O create --bundle $B t1 >/tmp/oci.out 2>&1 && $O start t1 >>/tmp/oci.out 2>&1; then
    pid=$($O state t1 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -n1)
    grep -qx "$pid" /sys/fs/cgroup/oci-test/c1/cgroup.procs && ok oci-cgroups-path || bad oci-cgroups-path "pid=$pid procs=$(cat /sys/fs/cgroup/oci-test/c1/cgroup.procs 2>&1) $(cat /tmp/oci.out)"
    $O pause t1
    if grep -qx "frozen 1" /sys/fs/cgroup/oci-test/c1/cgroup.events && $O state t1 | grep -q '"paused"'; then ok oci-pause; else bad oci-pause "$(cat /sys/fs/cgroup/oci-test/c1/cgroup.events) $($O state t1)"; fi
    $O resume t1
    if grep -qx "frozen 0" /sys/fs/cgroup/oci-test/c1/cgroup.events && $O state t1 | grep -q '"running"'; then ok oci-resume; else bad oci-resume "$(cat /sys/fs/cgroup/oci-test/c1/cgroup.events) $($O state t1)"; fi
    $O update --memory 64m --pids-limit 30 t1 >/tmp/oci.out 2>&1
    mem=$(cat /sys/fs/cgroup/oci-test/c1/memory.max); pids=$(cat /sys/fs/cgroup/oci-test/c1/pids.max)
    [ "$mem" = 67108864 ] && [ "$pids" = 30 ] && ok oci-update || bad oci-update "memory.max=$mem pids.max=$pids $(cat /tmp/oci.out)"
    $O delete --force t1
    [ ! -e /sys/fs/cgroup/oci-test/c1 ] && [ ! -e /run/gocker-oci/t1 ] && ok oci-delete-removes-cgroup || bad oci-delete-removes-cgroup "$(ls /sys/fs/cgroup/oci-test /run/gocker-oci 2>&1)"
else
    bad oci-create-start "$(cat /tmp/oci.out)"
fi

echo "VMTEST DONE pass=$pass fail=$fail"

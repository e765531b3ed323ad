#!/bin/bash
# Runs Debian's ZooKeeper in the foreground, logging to stdout.
#
# ZOO_HEAP (default 256m) sets the JVM heap; JVMFLAGS adds JVM options.
set -euo pipefail

conf_dir=/etc/zookeeper/conf
mkdir -p /var/lib/zookeeper/data /var/lib/zookeeper/log
# A server id is only needed in an ensemble; myid keeps zkServer.sh-based tools happy.
[[ -f /var/lib/zookeeper/data/myid ]] || echo "${ZOO_MY_ID:-1}" >/var/lib/zookeeper/data/myid

# shellcheck disable=SC2086
exec java \
    -Xms"${ZOO_HEAP:-256m}" -Xmx"${ZOO_HEAP:-256m}" \
    -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
    -Dzookeeper.root.logger="${ZOO_LOG_LEVEL:-INFO},CONSOLE" \
    -Dzookeeper.log.dir=/tmp \
    -Dlog4j.configuration="file:$conf_dir/log4j.properties" \
    ${JVMFLAGS:-} \
    -cp "$conf_dir:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$conf_dir/zoo.cfg"

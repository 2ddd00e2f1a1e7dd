#!/usr/bin/env bash
# Builds the in-process Neo4j 5.26 test server (scripts/neo4j-harness) into
# target/classes + target/dependency/, runnable offline with `java -cp`.
# Needs Java 17+ and Maven; reaches Maven Central only when ~/.m2 lacks the jars.
# Skips everything when the build matches the current pom.xml and sources.
set -euo pipefail
cd "$(dirname "$0")/neo4j-harness"
stamp=target/memshift-build.sha256
fingerprint=$( { cat pom.xml; find src -type f | sort | xargs cat; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then exit 0; fi
rm -rf target
mvn -q -B -Dstyle.color=never compile
echo "$fingerprint" > "$stamp"
echo "neo4j harness built: $(ls target/dependency | wc -l) jars in scripts/neo4j-harness/target/dependency"

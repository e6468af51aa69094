#!/usr/bin/env bash
# Starts one Spark executor inside the Occlum instance built from Occlum.json
# (run in the executor container, from the instance directory). Spark's
# Kubernetes backend sets the SPARK_* variables; they reach the enclave because
# Occlum.json lists them under env.untrusted. Spills go to /spill, the sealedfs
# mount over the host directory /var/spill (an emptyDir volume).
set -euo pipefail
mkdir -p /var/spill/tmp
exec occlum run /usr/lib/jvm/java-11-openjdk-amd64/bin/java \
  -Xmx"${SPARK_EXECUTOR_MEMORY:-4g}" -XX:ActiveProcessorCount="${SPARK_EXECUTOR_CORES:-4}" \
  -Dspark.local.dir=/spill -Djava.io.tmpdir=/spill/tmp \
  ${SPARK_JAVA_OPT_0:-} ${SPARK_JAVA_OPT_1:-} \
  -cp "/opt/spark/conf:/opt/spark/jars/*" \
  org.apache.spark.executor.CoarseGrainedExecutorBackend \
  --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" \
  --cores "${SPARK_EXECUTOR_CORES:-4}" --app-id "$SPARK_APPLICATION_ID" \
  --hostname "${SPARK_EXECUTOR_POD_IP:-$(hostname -i)}"

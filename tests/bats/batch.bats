#!/usr/bin/env bats
# make jobdefs (bin/render-jobdef, jobdefs/*.json) and make enqueue (bin/enqueue)
# against a moto server over HTTP, with the aws CLI as on AWS.

setup_file() {
  load helpers
  moto_start
  local trust='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "batch.amazonaws.com"}}]}'
  local service env_arn
  JOB_ROLE_ARN=$(aws iam create-role --role-name tb-job --assume-role-policy-document "$trust" --query Role.Arn --output text)
  EXECUTION_ROLE_ARN=$(aws iam create-role --role-name tb-exec --assume-role-policy-document "$trust" --query Role.Arn --output text)
  SECRET_ARN=$(aws secretsmanager create-secret --name tb-db --secret-string 'pw' --query ARN --output text)
  service=$(aws iam create-role --role-name tb-service --assume-role-policy-document "$trust" --query Role.Arn --output text)
  env_arn=$(aws batch create-compute-environment --compute-environment-name tb-env --type UNMANAGED \
    --service-role "$service" --query computeEnvironmentArn --output text)
  aws batch create-job-queue --job-queue-name tb-queue --state ENABLED --priority 1 \
    --compute-environment-order "order=1,computeEnvironment=$env_arn" >/dev/null
  aws s3api create-bucket --bucket tiles >/dev/null
  # The enqueue tests' job definitions: a prefix of their own, apart from make jobdefs'.
  local job
  for job in $(kinds); do
    aws batch register-job-definition --job-definition-name "eq-$job" --type container \
      --container-properties '{"image": "tb", "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]}' >/dev/null
  done
  export JOB_ROLE_ARN EXECUTION_ROLE_ARN SECRET_ARN
}

teardown_file() {
  moto_stop
}

setup() {
  load helpers
  bats_require_minimum_version 1.5.0
  export REGISTRY=123456789012.dkr.ecr.us-east-1.amazonaws.com TAG=t1 REGION=us-east-1
  export DB_HOST=db.internal DB_NAME=gis DB_USER=osm TILES_BUCKET=tiles RAWR_BUCKET=rawr-tiles
  export RAWR_PREFIX=rawr DATE_PREFIX=20261124
}

# Every active definition as registered, read once per test: `jobdef NAME` is
# the latest revision of one.
read_jobdefs() {
  aws batch describe-job-definitions --status ACTIVE --output json >"$BATS_TEST_TMPDIR/jobdefs.json"
}
jobdef() {
  jq --arg name "$1" '[.jobDefinitions[] | select(.jobDefinitionName == $name)] | max_by(.revision)' \
    "$BATS_TEST_TMPDIR/jobdefs.json"
}

# `tilebatch config get KEY` in the environment the definition NAME gives its jobs.
config_in() {
  local vars
  mapfile -t vars < <(jobdef "$1" | jq -r '.containerProperties.environment[] | "\(.name)=\(.value)"')
  env -i PATH="$PATH" "${vars[@]}" tilebatch config get "$2"
}

@test "make jobdefs registers three definitions that read back as rendered" {
  run make -s -C "$TOP" jobdefs DB_PASSWORD_SECRET_ARN="$SECRET_ARN" EXECUTION_ROLE_ARN="$EXECUTION_ROLE_ARN"
  assert_success
  run sort <<<"$output"
  assert_output "tilebatch-meta-high	1
tilebatch-meta-low	1
tilebatch-rawr	1"
  read_jobdefs

  for spec in rawr:rawr-tile:8192 meta-high:meta-tile:4096 meta-low:meta-tile-low-zoom:2048; do
    IFS=: read -r job command memory <<<"$spec"
    run jobdef "tilebatch-$job"
    def=$output
    run jq -cS '.containerProperties | [.image, .resourceRequirements, .command, .jobRoleArn]' <<<"$def"
    assert_output "[\"$REGISTRY/tilebatch-$job:t1\",[{\"type\":\"VCPU\",\"value\":\"1\"},{\"type\":\"MEMORY\",\"value\":\"$memory\"}],[\"tilebatch\",\"$command\",\"--config\",\"/etc/tilebatch/config.yaml\",\"--tile\",\"Ref::tile\",\"--run-id\",\"Ref::run_id\"],\"$JOB_ROLE_ARN\"]"
    # Batch matches these as globs; the first rule that matches decides.
    run jq -c '[.timeout.attemptDurationSeconds, .retryStrategy.attempts,
                (.retryStrategy.evaluateOnExit[] | .action |= ascii_upcase)]' <<<"$def"
    assert_output '[14400,3,{"onStatusReason":"Host EC2*","action":"RETRY"},{"onReason":"CannotPullContainerError*","action":"RETRY"},{"onStatusReason":"CannotPullContainerError*","action":"RETRY"},{"onExitCode":"2","action":"EXIT"},{"onReason":"OutOfMemoryError*","action":"EXIT"}]'
  done

  run jq -c '.containerProperties | [.secrets, .executionRoleArn]' <<<"$(jobdef tilebatch-rawr)"
  assert_output "[[{\"name\":\"TILEQUEUE__rawr__postgresql__password\",\"valueFrom\":\"$SECRET_ARN\"}],\"$EXECUTION_ROLE_ARN\"]"
  run jq -c '.containerProperties.secrets' <<<"$(jobdef tilebatch-meta-low)"
  assert_output "[{\"name\":\"TILEQUEUE__postgresql__password\",\"valueFrom\":\"$SECRET_ARN\"}]"
  run jq -c '.containerProperties.secrets' <<<"$(jobdef tilebatch-meta-high)"
  assert_output "[]"
  # No password in clear anywhere.
  run jq -r '.containerProperties.environment[].name' <<<"$(jobdef tilebatch-rawr)"
  refute_output --partial password

  # The environment is the runbook's; its strings read back as YAML in the jobs.
  run config_in tilebatch-meta-low postgresql
  assert_output "host: db.internal
port: 5432
dbnames:
- gis
user: osm
password: ''
connect-timeout: 10"
  run config_in tilebatch-meta-low store
  assert_line "name: tiles"
  assert_line "region: us-east-1"
  assert_line "date-prefix: '20261124'"
  run config_in tilebatch-rawr rawr
  assert_line --index 1 "postgresql:"
  assert_line --index 2 "  host: db.internal"
  assert_line --index 3 "  port: 5432"
  assert_line --index 4 "  dbname: gis"
  assert_line --index 5 "  user: osm"
  assert_line "  bucket: rawr-tiles"
  assert_line "  prefix: rawr"
  run config_in tilebatch-meta-high rawr.source.s3
  assert_output "bucket: rawr-tiles
region: us-east-1
prefix: rawr"
}

@test "the password goes in clear only when asked, and reads back as itself" {
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=clear DB_PASSWORD_PLAIN=1 DB_PASSWORD='s3"cr: et'
  assert_success
  assert_line "render-jobdef: rawr.json: warning: the database password goes into the job definition in clear"
  read_jobdefs
  run jq -c '.containerProperties.secrets' <<<"$(jobdef clear-rawr)"
  assert_output '[]'
  run config_in clear-rawr rawr.postgresql.password
  assert_output 's3"cr: et'
  run config_in clear-meta-low postgresql.password
  assert_output 's3"cr: et'
}

# What make jobdefs would add from config.mk, for bin/render-jobdef run alone.
render_env() {
  export JOB_NAME_PREFIX=tb RAWR_IMAGE=tb-rawr META_HIGH_IMAGE=tb-meta-high META_LOW_IMAGE=tb-meta-low
  export VCPUS=1 RAWR_MEMORY=1024 META_HIGH_MEMORY=1024 META_LOW_MEMORY=1024 JOB_TIMEOUT=600 DB_PORT=5432
}

# jq is wrapped to record its arguments: ps shows them to every user.
@test "bin/render-jobdef OUT: the password in clear from the environment, never an argument, in a file of the owner's only" {
  mkdir "$BATS_TEST_TMPDIR/shim"
  printf '#!/bin/sh\nprintf "%%s\\n" "$@" >>"%s"\nexec %s "$@"\n' "$BATS_TEST_TMPDIR/jq.argv" "$(command -v jq)" \
    >"$BATS_TEST_TMPDIR/shim/jq"
  chmod +x "$BATS_TEST_TMPDIR/shim/jq"
  local out=$BATS_TEST_TMPDIR/rawr.json
  render_env
  # A file left from before, readable by all: a redirect into it would keep that.
  install -m 644 /dev/null "$out"
  PATH="$BATS_TEST_TMPDIR/shim:$PATH" DB_PASSWORD_PLAIN=1 DB_PASSWORD='s3"cr: et' \
    run "$TOP/bin/render-jobdef" "$TOP/jobdefs/rawr.json" "$out"
  assert_success
  assert_output "render-jobdef: rawr.json: warning: the database password goes into the job definition in clear"
  run jq -r '.containerProperties.environment[] | select(.name == "TILEQUEUE__rawr__postgresql__password") | .value' "$out"
  assert_output 's3"cr: et'
  run stat -c %a "$out"
  assert_output 600
  [ -s "$BATS_TEST_TMPDIR/jq.argv" ]
  run grep -F 's3"cr' "$BATS_TEST_TMPDIR/jq.argv"
  assert_failure 1
  run ls "$BATS_TEST_TMPDIR"
  refute_output --partial rawr.json.
}

@test "bin/render-jobdef: an empty password in clear is exit 2 with one line, and writes nothing" {
  render_env
  DB_PASSWORD_PLAIN=1 DB_PASSWORD='' run "$TOP/bin/render-jobdef" "$TOP/jobdefs/meta-low.json" "$BATS_TEST_TMPDIR/meta-low.json"
  assert_failure 2
  assert_output "render-jobdef: meta-low.json: DB_PASSWORD is empty: set it, or use DB_PASSWORD_SECRET_ARN instead of DB_PASSWORD_PLAIN=1"
  [ ! -e "$BATS_TEST_TMPDIR/meta-low.json" ]
  # meta-high reads no database: it needs none.
  DB_PASSWORD_PLAIN=1 DB_PASSWORD='' run --separate-stderr "$TOP/bin/render-jobdef" "$TOP/jobdefs/meta-high.json"
  assert_success
}

@test "a bad value stops make jobdefs with one line before anything is registered" {
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=bad DB_PASSWORD_SECRET_ARN="$SECRET_ARN" EXECUTION_ROLE_ARN="$EXECUTION_ROLE_ARN" META_LOW_MEMORY=lots
  assert_failure
  assert_line "render-jobdef: meta-low.json: bad META_LOW_MEMORY 'lots': not a whole number above 0"
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=bad DB_PASSWORD_SECRET_ARN="$SECRET_ARN" EXECUTION_ROLE_ARN="$EXECUTION_ROLE_ARN" REGISTRY= META_HIGH_IMAGE=
  assert_failure
  assert_line "render-jobdef: meta-high.json: missing META_HIGH_IMAGE REGISTRY: set in config.mk or on the command line (make jobdefs NAME=value)"
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=bad
  assert_failure
  assert_line --partial "render-jobdef: meta-low.json: missing DB_PASSWORD_SECRET_ARN: the Secrets Manager ARN of the database password"
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=bad DB_PASSWORD_SECRET_ARN="$SECRET_ARN" EXECUTION_ROLE_ARN=
  assert_failure
  assert_line --partial "missing EXECUTION_ROLE_ARN: Batch needs it to read DB_PASSWORD_SECRET_ARN"
  run make -s -C "$TOP" jobdefs JOB_NAME_PREFIX=bad DB_PASSWORD_PLAIN=1 JOB_TIMEOUT=30
  assert_failure
  assert_line "render-jobdef: meta-high.json: bad JOB_TIMEOUT '30': not a whole number of seconds, at least 60 (Batch's minimum)"
  read_jobdefs
  run jq -r '.jobDefinitions[].jobDefinitionName' "$BATS_TEST_TMPDIR/jobdefs.json"
  refute_output --partial bad-
}

@test "bin/enqueue: usage on missing, unknown or incomplete arguments" {
  for args in "" "r1" "r1 rawr extra" "--tile r1 rawr" "--bogus r1 rawr" "r1 rawr --tile" "--tile= r1 rawr" "--pyramid=1 r1 rawr"; do
    # shellcheck disable=SC2086  # the words are the arguments
    run "$TOP/bin/enqueue" $args
    assert_failure 2
    assert_output --partial "usage: bin/enqueue [--config C] [--pyramid]"
  done
  # The job kinds are tilebatch's to know.
  run "$TOP/bin/enqueue" --dry-run r1 meta
  assert_failure 2
  assert_output --partial "argument --job: invalid choice: 'meta'"
}

@test "bin/enqueue run through a symlink elsewhere still finds lib.sh" {
  ln -s "$TOP/bin/enqueue" "$BATS_TEST_TMPDIR/enqueue"
  run "$BATS_TEST_TMPDIR/enqueue"
  assert_failure 2
  assert_output --partial "usage: bin/enqueue"
}

@test "bin/enqueue: a bad run id or tile is exit 2 with one line naming it" {
  run "$TOP/bin/enqueue" --dry-run "bad id" rawr
  assert_failure 2
  assert_output --partial '"msg": "bad run id '"'bad id'"
  run "$TOP/bin/enqueue" --dry-run --tile 7/1 r1 rawr
  assert_failure 2
  assert_output --partial "bad tile '7/1'"
}

@test "bin/enqueue passes every option through, a western box too, as --opt value or --opt=value" {
  export TILEQUEUE__batch__job_queue=tb-queue TILEQUEUE__batch__job_name_prefix=eq
  run --separate-stderr "$TOP/bin/enqueue" --dry-run --pyramid --bbox -10,50,-5,55 r1 meta-low
  assert_success
  run jq -c '[.jobName, .jobDefinition, .parameters, .arrayProperties.size, has("jobId")]' <<<"$output"
  assert_output '["eq-r1-0000","eq-meta-low",{"tile":"@runs/r1/meta-low/tiles-0000.txt","run_id":"r1"},16,false]'
  run "$TOP/bin/enqueue" --config "$TOP/config.yaml" --dry-run --tile 7/73/37 --depends-on nope r1 rawr
  assert_failure 2
  assert_output --partial "depends-on: no job 'nope'"
  # The README's form, --opt=value, submits what the spaced one does.
  run --separate-stderr "$TOP/bin/enqueue" --dry-run --pyramid --bbox=-10,50,-5,55 r1 meta-low
  assert_success
  assert_output "$("$TOP/bin/enqueue" --dry-run --pyramid --bbox -10,50,-5,55 r1 meta-low 2>/dev/null)"
  run jq -c '.parameters' <<<"$output"
  assert_output '{"tile":"@runs/r1/meta-low/tiles-0000.txt","run_id":"r1"}'
  run --separate-stderr "$TOP/bin/enqueue" --config="$TOP/config.yaml" --dry-run --tile=7/73/37 r1 rawr
  assert_success
  assert_output "$("$TOP/bin/enqueue" --config "$TOP/config.yaml" --dry-run --tile 7/73/37 r1 rawr 2>/dev/null)"
  run jq -c '.parameters' <<<"$output"
  assert_output '{"tile":"7/73/37","run_id":"r1"}'
}

@test "make enqueue submits rawr, then meta-high waiting for it child by child" {
  export JOB_QUEUE=tb-queue JOB_NAME_PREFIX=eq
  run --separate-stderr make -s -C "$TOP" enqueue RUN_ID=r2 JOB=rawr BBOX=24,59,27,61
  assert_success
  rawr=$(jq -r .jobId <<<"$output")
  run aws s3 cp s3://tiles/runs/r2/rawr/tiles-0000.txt -
  assert_output "7/72/36
7/72/37
7/73/36
7/73/37"
  run --separate-stderr make -s -C "$TOP" enqueue RUN_ID=r2 JOB=meta-high BBOX=24,59,27,61 DEPENDS_ON="$rawr"
  assert_success
  meta=$(jq -r .jobId <<<"$output")
  run aws batch describe-jobs --jobs "$meta" --query 'jobs[0].[jobName, arrayProperties.size, dependsOn]' --output json
  run jq -c . <<<"$output"
  assert_output "[\"eq-r2-0000\",4,[{\"jobId\":\"$rawr\",\"type\":\"N_TO_N\"}]]"
}

@test "make enqueue without a job kind prints the usage" {
  run make -s -C "$TOP" enqueue RUN_ID=r3 JOB=
  assert_failure
  assert_output --partial "usage: bin/enqueue"
}

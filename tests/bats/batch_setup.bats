#!/usr/bin/env bats
# make batch-setup / batch-teardown (bin/batch-setup, cloudformation/batch.yaml)
# against a moto server over HTTP, driven by the aws CLI as on AWS.

setup_file() {
  load helpers
  moto_start
  local vpc
  vpc=$(aws ec2 create-vpc --cidr-block 10.0.0.0/16 --query Vpc.VpcId --output text)
  SUBNET_A=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.1.0/24 --query Subnet.SubnetId --output text)
  SUBNET_B=$(aws ec2 create-subnet --vpc-id "$vpc" --cidr-block 10.0.2.0/24 --query Subnet.SubnetId --output text)
  SG=$(aws ec2 create-security-group --vpc-id "$vpc" --group-name batch --description batch --query GroupId --output text)
  export SUBNET_A SUBNET_B SG
  export SECRET=arn:aws:secretsmanager:us-east-1:123456789012:secret:tilebatch-db-AbCdEf
  export BATCH_SPOT=1 BATCH_MAX_VCPUS=64 BATCH_INSTANCE_TYPES="m5, c5"
  export BATCH_SUBNETS="$SUBNET_A,$SUBNET_B" BATCH_SECURITY_GROUPS=$SG
  export TILES_BUCKET=tiles TILES_PREFIX=/meta RAWR_BUCKET=rawr-tiles RAWR_PREFIX=rawr/
  export DB_PASSWORD_SECRET_ARN=$SECRET
}

teardown_file() {
  moto_stop
}

setup() {
  load helpers
  # Each test has a stack of its own: the queue and the roles are named after it.
  export BATCH_STACK=t$BATS_TEST_NUMBER
}

# An inline role policy as JSON. moto hands back a policy that CloudFormation
# made as a Python literal rather than JSON, and a removed (AWS::NoValue)
# statement as None; AWS returns JSON without it.
role_policy() {
  aws iam get-role-policy --role-name "$1" --policy-name "$2" --query PolicyDocument --output json \
    | python3 -c 'import ast, json, sys; d = json.load(sys.stdin); d = ast.literal_eval(d) if isinstance(d, str) else d; d["Statement"] = [s for s in d["Statement"] if s]; print(json.dumps(d))'
}

queue_environment() {
  aws batch describe-job-queues --job-queues "$BATCH_STACK" --query 'jobQueues[0].computeEnvironmentOrder[0].computeEnvironment' --output text
}

compute_resources() {
  aws batch describe-compute-environments --compute-environments "$(queue_environment)" \
    --query 'computeEnvironments[0].computeResources' --output json
}

@test "bin/batch-setup without a verb prints its usage" {
  run "$TOP/bin/batch-setup"
  assert_failure 2
  assert_output --partial "usage: bin/batch-setup setup|teardown"
  run "$TOP/bin/batch-setup" deploy
  assert_failure 2
}

@test "missing required variables stop with one line before anything is deployed" {
  run env -u BATCH_SUBNETS TILES_BUCKET= "$TOP/bin/batch-setup" setup
  assert_failure 2
  assert_output "batch-setup: missing BATCH_SUBNETS TILES_BUCKET: set them in config.mk or the environment"
  run aws cloudformation list-stacks --query "StackSummaries[?StackName=='$BATCH_STACK']" --output text
  assert_output ""
  # make passes config.mk's empty default on.
  run make -C "$TOP" --no-print-directory batch-setup BATCH_SECURITY_GROUPS=
  assert_failure
  assert_line "batch-setup: missing BATCH_SECURITY_GROUPS: set them in config.mk or the environment"
}

@test "bad values stop with exit 2 and the reason" {
  local bad
  for bad in BATCH_SPOT=yes BATCH_MAX_VCPUS=0 TILES_BUCKET=Tiles_Bucket DB_PASSWORD_SECRET_ARN=db-password BATCH_STACK=9lives; do
    run env "$bad" "$TOP/bin/batch-setup" setup
    assert_failure 2
    assert_output --regexp "^batch-setup: bad ${bad%%=*} '${bad#*=}': "
  done
  run aws cloudformation list-stacks --query 'StackSummaries[].StackName' --output text
  refute_output --partial 9lives
}

@test "make batch-setup creates the Spot compute environment, the job queue and the roles" {
  run make -C "$TOP" --no-print-directory batch-setup
  assert_success

  run aws batch describe-job-queues --job-queues "$BATCH_STACK" --query 'jobQueues[0].[state,priority]' --output text
  assert_output $'ENABLED\t1'
  run bash -c "$(declare -f queue_environment compute_resources); compute_resources | jq -c '{type, allocationStrategy, minvCpus, maxvCpus, instanceTypes, subnets, securityGroupIds, instanceRole, spotIamFleetRole}'"
  assert_output "{\"type\":\"SPOT\",\"allocationStrategy\":\"SPOT_CAPACITY_OPTIMIZED\",\"minvCpus\":0,\"maxvCpus\":64,\"instanceTypes\":[\"m5\",\"c5\"],\"subnets\":[\"$SUBNET_A\",\"$SUBNET_B\"],\"securityGroupIds\":[\"$SG\"],\"instanceRole\":\"arn:aws:iam::123456789012:instance-profile/$BATCH_STACK-ecs-instance\",\"spotIamFleetRole\":\"arn:aws:iam::123456789012:role/$BATCH_STACK-spot-fleet\"}"
  run aws batch describe-compute-environments --compute-environments "$(queue_environment)" --query 'computeEnvironments[0].[type,state,serviceRole]' --output text
  assert_output $'MANAGED\tENABLED\tarn:aws:iam::123456789012:role/'"$BATCH_STACK-batch-service"

  run aws iam get-instance-profile --instance-profile-name "$BATCH_STACK-ecs-instance" --query 'InstanceProfile.Roles[].RoleName' --output text
  assert_output "$BATCH_STACK-ecs-instance"
  run aws iam get-role --role-name "$BATCH_STACK-job" --query 'Role.AssumeRolePolicyDocument.Statement[0].Principal.Service' --output text
  assert_output ecs-tasks.amazonaws.com
}

@test "the job role may touch only the configured prefixes, the secret and the job logs" {
  "$TOP/bin/batch-setup" setup

  run aws iam list-role-policies --role-name "$BATCH_STACK-job" --query PolicyNames --output text
  assert_output tilebatch-job
  policy=$(role_policy "$BATCH_STACK-job" tilebatch-job)
  run jq -r '[.Statement[] | .Resource] | flatten | sort | .[]' <<<"$policy"
  assert_output "arn:aws:logs:us-east-1:123456789012:log-group:/aws/batch/job:*
arn:aws:s3:::rawr-tiles
arn:aws:s3:::rawr-tiles/rawr/*
arn:aws:s3:::tiles
arn:aws:s3:::tiles/meta/*
$SECRET"
  run jq -r '[.Statement[] | select(.Action | index("s3:GetObject")) | .Resource] | flatten | sort | join(" ")' <<<"$policy"
  assert_output "arn:aws:s3:::rawr-tiles/rawr/* arn:aws:s3:::tiles/meta/*"
  run jq -r '[.Statement[] | .Action] | flatten | unique | join(" ")' <<<"$policy"
  assert_output "logs:CreateLogStream logs:PutLogEvents s3:DeleteObject s3:GetObject s3:ListBucket s3:PutObject secretsmanager:GetSecretValue"
  run jq -r '[.Statement[] | .Effect] | unique | join(" ")' <<<"$policy"
  assert_output Allow

  # The ECS agent resolves the job definitions' secrets with the execution role.
  run jq -r '.Statement[] | "\(.Action) \(.Resource)"' <<<"$(role_policy "$BATCH_STACK-execution" tilebatch-db-password)"
  assert_output "secretsmanager:GetSecretValue $SECRET"
}

@test "on-demand without a secret: an EC2 compute environment, no Spot fleet role, no secret access" {
  BATCH_SPOT=0 DB_PASSWORD_SECRET_ARN='' TILES_PREFIX='' "$TOP/bin/batch-setup" setup

  run bash -c "$(declare -f queue_environment compute_resources); compute_resources | jq -c '[.type, .allocationStrategy, .spotIamFleetRole]'"
  assert_output '["EC2","BEST_FIT_PROGRESSIVE",null]'
  run aws iam get-role --role-name "$BATCH_STACK-spot-fleet"
  assert_failure
  assert_output --partial NoSuchEntity
  policy=$(role_policy "$BATCH_STACK-job" tilebatch-job)
  run jq -r '[.Statement[] | .Resource] | flatten | map(select(startswith("arn:aws:s3"))) | sort | join(" ")' <<<"$policy"
  assert_output "arn:aws:s3:::rawr-tiles arn:aws:s3:::rawr-tiles/rawr/* arn:aws:s3:::tiles arn:aws:s3:::tiles/*"
  run jq -r '[.Statement[] | .Action] | flatten | map(select(startswith("secretsmanager"))) | length' <<<"$policy"
  assert_output 0
  run aws iam list-role-policies --role-name "$BATCH_STACK-execution" --query PolicyNames --output text
  assert_output ""
}

@test "setup twice is fine: the second changes nothing" {
  "$TOP/bin/batch-setup" setup
  "$TOP/bin/batch-setup" setup >/dev/null 2>"$BATS_TEST_TMPDIR/stderr"
  run cat "$BATS_TEST_TMPDIR/stderr"
  assert_output --partial "No changes to deploy"
  run aws batch describe-job-queues --query "length(jobQueues[?jobQueueName=='$BATCH_STACK'])"
  assert_output 1
  run aws cloudformation describe-stacks --stack-name "$BATCH_STACK" --query 'Stacks[0].StackStatus' --output text
  assert_output CREATE_COMPLETE
}

@test "setup prints the stack's outputs as KEY=value lines" {
  # moto fills in Outputs only for stacks made by CreateStack, not by the
  # change sets `deploy` executes: make the stack that way, with the values
  # setup passes, and let setup find nothing to change.
  aws cloudformation create-stack --stack-name "$BATCH_STACK" --capabilities CAPABILITY_NAMED_IAM \
    --template-body "file://$TOP/cloudformation/batch.yaml" --parameters \
    ParameterKey=Spot,ParameterValue=true ParameterKey=MaxVcpus,ParameterValue=64 \
    'ParameterKey=InstanceTypes,ParameterValue="m5,c5"' \
    "ParameterKey=Subnets,ParameterValue=\"$SUBNET_A,$SUBNET_B\"" "ParameterKey=SecurityGroups,ParameterValue=$SG" \
    ParameterKey=TilesBucket,ParameterValue=tiles ParameterKey=TilesPrefix,ParameterValue=meta/ \
    ParameterKey=RawrBucket,ParameterValue=rawr-tiles ParameterKey=RawrPrefix,ParameterValue=rawr/ \
    "ParameterKey=DbPasswordSecretArn,ParameterValue=$SECRET" >/dev/null

  "$TOP/bin/batch-setup" setup >"$BATS_TEST_TMPDIR/stdout"
  environment=$(queue_environment)
  run cat "$BATS_TEST_TMPDIR/stdout"
  assert_output "COMPUTE_ENVIRONMENT=$environment
EXECUTION_ROLE_ARN=arn:aws:iam::123456789012:role/$BATCH_STACK-execution
JOB_QUEUE=arn:aws:batch:us-east-1:123456789012:job-queue/$BATCH_STACK
JOB_ROLE_ARN=arn:aws:iam::123456789012:role/$BATCH_STACK-job"
}

@test "make batch-teardown deletes the stack and its roles; again is fine" {
  "$TOP/bin/batch-setup" setup
  # Another region holds no such stack: that teardown leaves this one alone.
  REGION=eu-west-1 "$TOP/bin/batch-setup" teardown 2>/dev/null
  run aws cloudformation describe-stacks --stack-name "$BATCH_STACK" --query 'Stacks[0].StackStatus' --output text
  assert_output CREATE_COMPLETE

  run make -C "$TOP" --no-print-directory batch-teardown
  assert_success
  assert_line "batch-setup: stack $BATCH_STACK is deleted"

  run aws cloudformation list-stacks --query "StackSummaries[?StackName=='$BATCH_STACK'].StackStatus" --output text
  assert_output DELETE_COMPLETE
  run aws iam list-roles --query "Roles[?starts_with(RoleName, '$BATCH_STACK-')].RoleName" --output text
  assert_output ""
  run aws iam list-instance-profiles --query "InstanceProfiles[?InstanceProfileName=='$BATCH_STACK-ecs-instance']" --output text
  assert_output ""

  run "$TOP/bin/batch-setup" teardown
  assert_success
}

@test "the template passes cfn-lint" {
  run cfn-lint "$TOP/cloudformation/batch.yaml"
  assert_success
  assert_output ""
}

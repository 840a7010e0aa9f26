# STAND-IN for include/terraform/aws, for tests only: same variables and rules
# (variables.tf and rules.tf link to the aws module's), same outputs, same S3 backend, but
# built-in resources only (terraform_data + local-exec), because the AWS
# provider plugin cannot be downloaded where the tests run. The local-exec
# calls `python -m cachebench.aws.standin`, which makes the replication group
# and the AUTH secret through boto3 in whatever AWS_ENDPOINT_URL points at
# (the tests' moto server). Never use it against a real account.
terraform {
  required_version = ">= 1.10"
  backend "s3" {}
}

# What only a root module may hold: the backend and the provider's configuration.
# The tests plan every other file of this module as a child module of one root
# (tests/aws/test_aws_module_plan.py: one provider for the whole matrix).

terraform {
  # Configured at `terraform init` by the DAG (cachebench.targets.aws.backend_config):
  # bucket, key = <prefix>/<campaign>/<run>/<deployment>/terraform.tfstate, region,
  # use_lockfile = true, encrypt = true.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

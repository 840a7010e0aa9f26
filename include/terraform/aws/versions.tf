terraform {
  # use_lockfile (S3-native state locking) needs Terraform >= 1.10.
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Configured at `terraform init` by the DAG (cachebench.targets.aws.backend_config):
  # bucket, key = <prefix>/<campaign>/<run>/<point>/terraform.tfstate, region,
  # use_lockfile = true, encrypt = true.
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}

terraform {
  # Write-only arguments (secret_string_wo: the AUTH token never enters the state
  # through the secret) need Terraform >= 1.11; use_lockfile (S3 state locking) >= 1.10.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

# Optional, applied once per account and region by a human (not by the DAG):
# the ECS side of the aws target. Its outputs are the settings for the Airflow
# Variable `cachebench_aws`.

variable "region" {
  type        = string
  description = "AWS region, e.g. eu-west-1."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  type        = string
  description = "Name of the ECS cluster, task definition family, roles and security group."
  default     = "cachebench-loadgen"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}$", var.name))
    error_message = "name must be 1-31 chars of a-z, 0-9 and '-', starting with a letter."
  }
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC of the caches and the load tasks."
  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR of the VPC: the load tasks may reach port 6379 only inside it."
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid CIDR."
  }
}

variable "image" {
  type        = string
  description = "Container image with memtier_benchmark 2.x, /bin/sh, sed and the AWS CLI."
  validation {
    condition     = length(var.image) > 0
    error_message = "image must name a container image."
  }
}

variable "results_bucket" {
  type        = string
  description = "Existing S3 bucket the load tasks upload their memtier results to."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.results_bucket))
    error_message = "results_bucket must be an S3 bucket name."
  }
}

variable "results_prefix" {
  type        = string
  description = "Key prefix of the results (the tasks may write only below it)."
  default     = "cachebench-results"
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for the load tasks' log group (null: the service's key); its key policy must admit CloudWatch Logs."
  default     = null
  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN or null."
  }
}

variable "secrets_kms_key_arn" {
  type        = string
  description = "The kms_key_arn of the cachebench_aws Variable, the key the points' AUTH secrets are encrypted with: the execution role gets kms:Decrypt on it (null: the secrets use Secrets Manager's AWS managed key)."
  default     = null
  validation {
    condition     = var.secrets_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN or null."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the load tasks' log group, in days."
  default     = 14
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts."
  }
}

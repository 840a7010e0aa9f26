# The DAG writes every variable below into terraform.tfvars.json
# (cachebench.targets.aws.tfvars). No variable holds a secret: the AUTH token
# is generated here and kept in Secrets Manager.

variable "region" {
  type        = string
  description = "AWS region of the cache, e.g. eu-west-1."
  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "campaign" {
  type        = string
  description = "Campaign name (tag cachebench:campaign)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,39}$", var.campaign))
    error_message = "campaign must be 1-40 chars of a-z, 0-9 and '-'."
  }
}

variable "run_id" {
  type        = string
  description = "Airflow run id (tag cachebench:run)."
  validation {
    condition     = can(regex("^[A-Za-z0-9_.:/=+@ -]{1,256}$", var.run_id))
    error_message = "run_id must be 1-256 chars a tag value accepts (letters, digits, space, _ . : / = + - @)."
  }
}

variable "deployment_id" {
  type        = string
  description = "Deployment id (tag cachebench:deployment): engine-version-topology-node_type."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,159}$", var.deployment_id))
    error_message = "deployment_id must be 1-160 chars of a-z, 0-9, '.' and '-'."
  }
}

variable "replication_group_id" {
  type        = string
  description = "ElastiCache replication group id (also names the subnet group, parameter group, security group, secret, log groups and dashboard)."
  validation {
    condition     = can(regex("^[a-z]([a-z0-9]|-[a-z0-9]){0,39}$", var.replication_group_id)) && length(var.replication_group_id) <= 40
    error_message = "replication_group_id must be 1-40 chars of a-z, 0-9 and single hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "engine" {
  type        = string
  description = "redis or valkey."
  validation {
    condition     = contains(["redis", "valkey"], var.engine)
    error_message = "engine must be \"redis\" or \"valkey\"."
  }
}

variable "engine_version" {
  type        = string
  description = "Engine version as ElastiCache names it: redis 6.2, 7.0, 7.1; valkey 7.2, 8.0, 8.1, 8.2."
  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+$", var.engine_version))
    error_message = "engine_version must be major.minor, e.g. 7.1 or 8.0."
  }
}

variable "node_type" {
  type        = string
  description = "Cache node type, e.g. cache.r7g.large."
  validation {
    condition     = can(regex("^cache\\.[a-z0-9]+\\.[a-z0-9]+$", var.node_type))
    error_message = "node_type must look like cache.r7g.large."
  }
}

variable "cluster_mode" {
  type        = bool
  description = "true: cluster mode enabled (shards x replicas); false: one shard with replicas."
  default     = false
}

variable "shards" {
  type        = number
  description = "Node groups (shards); must be 1 when cluster_mode is false."
  default     = 1
  validation {
    condition     = var.shards == floor(var.shards) && var.shards >= 1 && var.shards <= 500
    error_message = "shards must be a whole number in 1..500."
  }
}

variable "replicas" {
  type        = number
  description = "Replicas per shard."
  default     = 0
  validation {
    condition     = var.replicas == floor(var.replicas) && var.replicas >= 0 && var.replicas <= 5
    error_message = "replicas must be a whole number in 0..5."
  }
}

variable "vpc_id" {
  type        = string
  description = "Existing VPC of the cache (and of the load generators)."
  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123456789abcdef0."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Existing private subnets of the cache subnet group (two or more AZs for replicas)."
  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "subnet_ids must be one or more ids like subnet-0123456789abcdef0."
  }
}

variable "allowed_security_group_ids" {
  type        = list(string)
  description = "Security groups admitted to the engine port (the load generators' group)."
  default     = []
  validation {
    condition     = alltrue([for s in var.allowed_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "allowed_security_group_ids must be ids like sg-0123456789abcdef0."
  }
}

variable "allowed_cidr_blocks" {
  type        = list(string)
  description = "CIDRs admitted to the engine port besides the security groups (never 0.0.0.0/0)."
  default     = []
  validation {
    condition     = alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "allowed_cidr_blocks must be valid CIDRs other than 0.0.0.0/0."
  }
}

variable "transit_encryption" {
  type        = bool
  description = "TLS between clients and nodes, with an AUTH token (true); false: plaintext and no AUTH (ElastiCache takes a token only with TLS), to compare with published plaintext numbers."
  default     = true
}

variable "kms_key_arn" {
  type        = string
  description = "Customer managed KMS key for at-rest encryption, the logs and the AUTH secret (null: AWS managed keys)."
  default     = null
  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN or null."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the slow-log and engine-log groups, in days."
  default     = 14
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ...)."
  }
}

variable "maxmemory_policy" {
  type        = string
  description = "maxmemory-policy of the parameter group. allkeys-lru: memtier's keys have no TTL, so under ElastiCache's default volatile-lru a data set above memory gets OOM error replies instead of evictions."
  default     = "allkeys-lru"
  validation {
    condition = contains([
      "volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu",
      "volatile-random", "allkeys-random", "volatile-ttl", "noeviction",
    ], var.maxmemory_policy)
    error_message = "maxmemory_policy must be an eviction policy the engines accept."
  }
}

variable "expires_at" {
  type        = number
  description = "Unix time after which the point's resources are leftovers (tag cachebench:expires-at, for the reaper)."
  validation {
    condition     = var.expires_at == floor(var.expires_at) && var.expires_at > 1600000000
    error_message = "expires_at must be a unix time in seconds."
  }
}

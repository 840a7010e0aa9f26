# Cross-variable rules (cluster_mode off => shards == 1, the last port must fit)
# are lifecycle preconditions in main.tf: validation blocks may only refer to
# other variables from Terraform 1.9 on, and this module supports 1.5.

variable "deployment_id" {
  type        = string
  description = "Id of the deployment these servers belong to (a slug)."
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{0,159}$", var.deployment_id))
    error_message = "deployment_id must be 1-160 chars of a-z, 0-9, '.' and '-', starting with a letter or digit."
  }
}

variable "campaign" {
  type        = string
  description = "Campaign name, recorded in the registry for the reaper."
  validation {
    condition     = length(var.campaign) > 0 && !can(regex("[\\x00-\\x1f]", var.campaign))
    error_message = "campaign must be a non-empty string without control characters."
  }
}

variable "run_id" {
  type        = string
  description = "Airflow run id, recorded in the registry for the reaper."
  validation {
    condition     = length(var.run_id) > 0 && !can(regex("[\\x00-\\x1f]", var.run_id))
    error_message = "run_id must be a non-empty string without control characters."
  }
}

variable "engine" {
  type        = string
  description = "Engine of server_binary: redis or valkey."
  validation {
    condition     = contains(["redis", "valkey"], var.engine)
    error_message = "engine must be \"redis\" or \"valkey\"."
  }
}

variable "engine_version" {
  type        = string
  description = "Engine version, e.g. \"7.0\" or \"9.1\"; up checks it against `server_binary --version`."
  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+){0,2}$", var.engine_version))
    error_message = "engine_version must look like 7, 7.0 or 7.0.15."
  }
}

variable "server_binary" {
  type        = string
  description = "Absolute path of the redis-server or valkey-server binary to run."
  validation {
    condition     = startswith(var.server_binary, "/")
    error_message = "server_binary must be an absolute path."
  }
}

variable "cluster_mode" {
  type        = bool
  description = "true: a Redis Cluster of shards x (1 + replicas) nodes; false: one primary and its replicas."
  default     = false
}

variable "shards" {
  type        = number
  description = "Number of shards (node groups); must be 1 when cluster_mode is false."
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

variable "base_port" {
  type        = number
  description = "Port of node 0; node i (shard-major order) listens on base_port + i. Cluster bus ports are port + 10000."
  default     = 27000
  validation {
    condition     = var.base_port == floor(var.base_port) && var.base_port >= 1024 && var.base_port <= 65535
    error_message = "base_port must be a whole number in 1024..65535."
  }
}

variable "maxmemory_bytes" {
  type        = number
  description = "maxmemory of every node, in bytes (0 = no limit)."
  default     = 1073741824
  validation {
    condition     = var.maxmemory_bytes == floor(var.maxmemory_bytes) && var.maxmemory_bytes >= 0
    error_message = "maxmemory_bytes must be a whole number >= 0."
  }
}

variable "maxmemory_policy" {
  type        = string
  description = "maxmemory-policy (the campaign's maxmemory_policy); allkeys-lru, as memtier's keys have no TTL."
  default     = "allkeys-lru"
  validation {
    condition = contains([
      "volatile-lru", "allkeys-lru", "volatile-lfu", "allkeys-lfu",
      "volatile-random", "allkeys-random", "volatile-ttl", "noeviction",
    ], var.maxmemory_policy)
    error_message = "maxmemory_policy must be one of the eviction policies Redis and Valkey accept."
  }
}

variable "io_threads" {
  type        = number
  description = "io-threads of every node (1 = main thread only)."
  default     = 1
  validation {
    condition     = var.io_threads == floor(var.io_threads) && var.io_threads >= 1 && var.io_threads <= 128
    error_message = "io_threads must be a whole number in 1..128."
  }
}

variable "state_dir" {
  type        = string
  description = "Absolute path of the deployment's state directory (registry, logs, metrics; no secret)."
  validation {
    condition     = startswith(var.state_dir, "/") && length(trimspace(var.state_dir)) > 1
    error_message = "state_dir must be an absolute path other than /."
  }
}

variable "runtime_dir" {
  type        = string
  description = "Absolute path of the deployment's private folder (0700) for its secrets: the password file and the servers' configs. Outside the results folder, so that one holds no secret."
  validation {
    condition     = startswith(var.runtime_dir, "/") && length(trimspace(var.runtime_dir)) > 1
    error_message = "runtime_dir must be an absolute path other than /."
  }
}

variable "python" {
  type        = string
  description = "Python interpreter that has redis-py and can import cachebench."
  default     = "python3"
}

variable "pythonpath" {
  type        = string
  description = "PYTHONPATH for that interpreter: the directory holding the cachebench package (plugins/)."
  default     = ""
}

variable "metrics_interval_seconds" {
  type        = number
  description = "Seconds between two INFO samples of the metrics agent."
  default     = 1
  validation {
    condition     = var.metrics_interval_seconds > 0 && var.metrics_interval_seconds <= 300
    error_message = "metrics_interval_seconds must be in (0, 300]."
  }
}

variable "expires_at" {
  type        = number
  description = "Unix time after which the servers are leftovers: the agent stops, the reaper kills them."
  validation {
    condition     = var.expires_at == floor(var.expires_at) && var.expires_at > 1600000000
    error_message = "expires_at must be a unix time in seconds."
  }
}

variable "miniature" {
  type = object({
    key                = string
    mimics             = string
    subnet             = string
    cpu_limit_cores    = number
    memory_limit_bytes = number
    load_cpu_cores     = number
    allowance = object({
      baseline_bps = number
      burst_bps    = number
      bucket_bytes = number
    })
  })
  description = "A miniature of an ElastiCache node type (cachebench.targets.local.miniature): each node in its own network namespace (an address of subnet, a /27 claimed machine-wide) and cgroup (CPU quota, memory limit), its traffic through a token bucket each way (allowance: null for none); the load generators get load_cpu_cores. null: a plain node on 127.0.0.1."
  default     = null
  validation {
    condition = var.miniature == null ? true : (
      can(regex("^[0-9a-f]{8}$", var.miniature.key)) &&
      can(cidrhost(var.miniature.subnet, 0)) &&
      var.miniature.cpu_limit_cores > 0 && var.miniature.memory_limit_bytes > 0 &&
      var.miniature.load_cpu_cores > 0
    )
    error_message = "miniature needs an 8-hex key, a subnet in CIDR form and CPU, memory and load limits > 0."
  }
}

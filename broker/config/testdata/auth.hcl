cache_size = 5000
listener "tcp" {
  address     = "127.0.0.1:9200"
  tls_disable = true
}
audit { path = "/var/log/brokerd/audit.log" }
auth {
  one_time_token_validity = "2m"
  worker_scopes           = ["o_1", "global"]
}
kms "aead" {
  purpose               = ["root"]
  key                   = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
  health_check_interval = "1m"
  max_restart_backoff   = "2s"
}

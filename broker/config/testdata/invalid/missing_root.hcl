listener "tcp" {
  address     = "127.0.0.1:9200"
  tls_disable = true
}

kms "aead" {
  purpose = ["worker-auth", "recovery"]
  key_id  = "local-1"
}

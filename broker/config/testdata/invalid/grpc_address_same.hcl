listener "tcp" {
  address      = "127.0.0.1:9200"
  grpc_address = "127.0.0.1:9200"
  tls_disable  = true
}
kms "aead" {
  purpose = ["root"]
  key     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
}

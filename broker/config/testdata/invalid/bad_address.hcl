listener "tcp" {
  address     = "localhost"
  tls_disable = true
}

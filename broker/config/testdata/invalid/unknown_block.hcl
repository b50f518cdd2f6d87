listner "tcp" {
  tls_disable = true
}

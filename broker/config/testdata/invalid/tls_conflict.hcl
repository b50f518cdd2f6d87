listener "tcp" {
  tls_disable  = true
  tls_key_file = "/etc/brokerd/tls.key"
}

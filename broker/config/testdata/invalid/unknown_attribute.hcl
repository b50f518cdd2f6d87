log_levle = "info"

listener "tcp" {
  adress      = "127.0.0.1:9200"
  tls_disable = true
}

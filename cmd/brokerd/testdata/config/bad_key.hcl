plugins { directory = "@PLUGINS@" }

listener "tcp" {
  address     = "127.0.0.1:9200"
  tls_disable = true
}

kms "aead" {
  purpose = ["root"]
  key_id  = "root-1"
  key     = "not base64 at all"
}

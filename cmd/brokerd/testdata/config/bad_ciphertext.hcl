plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["root"]
  key     = "{{decrypt(bm90IGEgYmxvYg==)}}"
}

kms "aead" {
  purpose = ["config"]
  key     = "@CONFIG_KEY@"
}

plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(@KEY@)}}"
}

kms "aead" {
  purpose = ["config"]
  key     = "@CONFIG_KEY@"
}

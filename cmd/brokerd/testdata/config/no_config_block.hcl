plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(@KEY@)}}"
}

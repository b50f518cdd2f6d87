kms "aead" {
  purpose = ["root"]
  key     = "{{decrypt(CiWC6K0KKMnmWDlLjGWtBQv9i/yWDVo+MuSswh8wpn5qj1pdooCZKgUaA2NmZw==)}}"
}

plugins {
  directory = "{{decrypt(L3Vzci9saWJleGVj)}}"
}

kms "aead" {
  purpose = ["root"]
  key     = "{{decrypt(CiWC6K0KKMnmWDlLjGWtBQv9i/yWDVo+MuSswh8wpn5qj1pdooCZKgUaA2NmZw==)}}"
}

kms "aead" {
  purpose = ["config"]
  key     = "x9l3pB0mPZ0wOqjNpf1wg8oYJ6V7CkqVhqkD6wF3n0I="
}

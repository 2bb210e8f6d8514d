module github.com/ostiary/ostiary

go 1.26

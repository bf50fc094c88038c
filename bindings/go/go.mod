module github.com/libcoderinfer/coderinfer-go

go 1.19

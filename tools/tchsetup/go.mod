module github.com/mollify/mollify/tools/tchsetup

go 1.22

module github.com/statesync-go/statesync

go 1.26

module github.com/statesync-go/statesync/integrations/wails

go 1.26.0

require (
	github.com/statesync-go/statesync v0.0.0
	go.uber.org/goleak v1.3.0
)

replace github.com/statesync-go/statesync => ../..

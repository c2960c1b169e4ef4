module github.com/statesync-go/statesync/integrations/koanf

go 1.26.0

require (
	github.com/knadh/koanf/parsers/json v1.0.1
	github.com/knadh/koanf/v2 v2.4.1
	github.com/statesync-go/statesync v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/go-viper/mapstructure/v2 v2.4.0 // indirect
	github.com/knadh/koanf/maps v0.1.2 // indirect
	github.com/mitchellh/copystructure v1.2.0 // indirect
	github.com/mitchellh/reflectwalk v1.0.2 // indirect
)

replace github.com/statesync-go/statesync => ../..

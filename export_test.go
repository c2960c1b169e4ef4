package statesync

// NewRetryProvider gives the external tests the provider wrapper that
// ConsumerOptions.Retry installs, so that retry schedules are tested on
// their own.
func NewRetryProvider(p Provider, policy *RetryPolicy) (Provider, error) {
	rp, err := newRetryProvider(p, policy)
	if err != nil {
		return nil, err
	}
	return rp, nil
}

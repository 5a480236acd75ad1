package daprtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"gopkg.in/yaml.v3"
)

func TestComponentIsTheResourceDaprdReads(t *testing.T) {
	var c struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string
		Metadata   struct{ Name string }
		Spec       struct {
			Type     string
			Version  string
			Metadata []struct{ Name, Value string }
		}
	}
	doc := Component("store", "state.redis", "redisHost", "127.0.0.1:6379", "keyPrefix", `a "quoted" name`)
	assert.NoError(t, yaml.Unmarshal([]byte(doc), &c), doc)
	assert.Equal(t, "dapr.io/v1alpha1", c.APIVersion)
	assert.Equal(t, "Component", c.Kind)
	assert.Equal(t, "store", c.Metadata.Name)
	assert.Equal(t, "state.redis", c.Spec.Type)
	assert.Equal(t, "v1", c.Spec.Version)
	assert.Equal(t, []struct{ Name, Value string }{{"redisHost", "127.0.0.1:6379"}, {"keyPrefix", `a "quoted" name`}}, c.Spec.Metadata)
}

func TestComponentWantsNameValuePairs(t *testing.T) {
	odd := []string{"redisHost"}
	assert.Panics(t, func() { Component("store", "state.redis", odd...) })
}

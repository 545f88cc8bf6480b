package httpapi

import (
	_ "embed"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/goccy/go-yaml"
)

// openapiYAML is the hand-written OpenAPI 3 description of the API. Tests
// check it against the registered routes both ways and validate sample
// responses against its schemas.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json, as JSON.
func OpenAPI() ([]byte, error) {
	b, err := yaml.YAMLToJSON(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("httpapi: openapi.yaml: %w", err)
	}
	return b, nil
}

func (s *Server) openapi(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", s.openapiJSON)
}

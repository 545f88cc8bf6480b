package httpapi

import (
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// withSecretView sets how the request's reads show secret files: the
// envelope when the client asks for it (api.HeaderSecrets), the plaintext
// for a principal with the secrets grant on the ref, a placeholder for
// anyone else. Reads that bypass it see placeholders (the default).
func (s *Server) withSecretView(c *gin.Context, p *access.Principal) {
	envelope := c.GetHeader(api.HeaderSecrets) == api.SecretsEnvelope
	view := func(ref configsvc.Ref) configsvc.SecretView {
		switch {
		case envelope:
			return configsvc.SecretEnvelope
		case s.authz.Decide(p, access.ActionSecrets, access.Target{Ref: ref}).Allowed:
			return configsvc.SecretPlaintext
		}
		return configsvc.SecretRedacted
	}
	c.Request = c.Request.WithContext(configsvc.WithSecretView(c.Request.Context(), view))
}

// dataKey unwraps the data key of one secret file revision for a token
// with the secrets grant on the ref (what the SDK decrypts envelopes
// with). The envelope header must name the ref of the path: the wrapped
// key is bound to it, so no other ref's key can be had this way.
func (s *Server) dataKey(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok || !s.authorize(c, access.ActionSecrets, access.Target{Ref: ref}) {
			return
		}
		var req api.DataKeyRequest
		if err := decodeJSON(c, api.MaxDataKeyHeader+1024, &req); err != nil {
			s.fail(c, err)
			return
		}
		if len(req.Header) > api.MaxDataKeyHeader {
			s.fail(c, &configsvc.FieldError{Field: "header", Msg: fmt.Sprintf("at most %d bytes (MaxDataKeyHeader)", api.MaxDataKeyHeader)})
			return
		}
		h, err := secrets.ParseHeader(req.Header)
		if err != nil {
			s.fail(c, &configsvc.FieldError{Field: "header", Msg: "must be the header line of a secret envelope"})
			return
		}
		if h.Ref() != ref {
			s.fail(c, &configsvc.FieldError{Field: "header", Value: h.Ref().String(), Msg: "names another service or group than the path"})
			return
		}
		if s.cfg.Keyring == nil {
			s.fail(c, secrets.ErrNoKeyring)
			return
		}
		key, err := s.cfg.Keyring.Unwrap(c.Request.Context(), h.KeyID, h.Wrapped, h.AAD())
		if err != nil {
			s.fail(c, err)
			return
		}
		state(c).target = h.File
		c.JSON(http.StatusOK, api.DataKey{Key: key})
	}
}

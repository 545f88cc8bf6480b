package api

import (
	"context"
	"net/http"

	"github.com/sluicehq/sluice/configsvc"
)

// HeaderSecrets is the request header that chooses how secret files
// (configsvc.IsSecretFile) come back: SecretsEnvelope for the stored
// envelope (ciphertext). Without it a token with the secrets grant gets
// the plaintext and any other a placeholder naming the file's size and
// revision, never its value (docs/secrets.md).
const HeaderSecrets = "X-Sluice-Secrets"

// SecretsEnvelope is the value of HeaderSecrets that asks for envelopes.
const SecretsEnvelope = "envelope"

// DataKeyRequest asks the admin server to unwrap the data key of one
// secret file revision: Header is the envelope's header line (its second
// line, JSON), which names the service or group, the file, the revision
// and the wrapped key. It is at most MaxDataKeyHeader bytes.
type DataKeyRequest struct {
	Header string `json:"header"`
}

// MaxDataKeyHeader bounds DataKeyRequest.Header, in bytes.
const MaxDataKeyHeader = 8 << 10

// DataKey is the unwrapped data key of one secret file revision (32 bytes,
// base64 in JSON). It opens that revision's ciphertext only: keep it in
// memory, never on disk.
type DataKey struct {
	Key []byte `json:"key"`
}

// DataKey asks the server to unwrap the data key of the envelope whose
// header line is header, for a secret file of ref. The token needs the
// secrets grant on ref (ErrForbidden otherwise); a key the server's
// keyring lacks is ErrUnavailable (503).
func (c *Client) DataKey(ctx context.Context, ref configsvc.Ref, header string) ([]byte, error) {
	var out DataKey
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "datakey"), retry: true, noKey: true},
		DataKeyRequest{Header: header}, &out)
	if err != nil {
		return nil, err
	}
	return out.Key, nil
}

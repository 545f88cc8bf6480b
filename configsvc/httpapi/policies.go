package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/approval"
)

// policyParam returns the validated policy name of the path and records
// the audit target.
func (s *Server) policyParam(c *gin.Context) (string, bool) {
	name, err := param(c, "name")
	if err == nil {
		err = approval.ValidatePolicyName(name)
	}
	if err != nil {
		s.fail(c, err)
		return "", false
	}
	state(c).target = "policy/" + name
	return name, true
}

func (s *Server) listPolicies(c *gin.Context) {
	if !s.manage(c) {
		return
	}
	ps, err := s.gov.Policies(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, api.PolicyList{Policies: ps})
}

func (s *Server) getPolicy(c *gin.Context) {
	name, ok := s.policyParam(c)
	if !ok || !s.manage(c) {
		return
	}
	p, err := s.gov.Policy(c.Request.Context(), name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, p)
}

// putPolicy creates (201) or replaces (200) a policy; the body's name, when
// given, must be the path's.
func (s *Server) putPolicy(c *gin.Context) {
	name, ok := s.policyParam(c)
	if !ok || !s.manage(c) {
		return
	}
	var p api.Policy
	if err := decodeJSON(c, MaxJSONBody, &p); err != nil {
		s.fail(c, err)
		return
	}
	if p.Name != "" && p.Name != name {
		s.fail(c, &configsvc.FieldError{Field: "name", Value: p.Name, Msg: "must be the policy name of the path, " + name})
		return
	}
	p.Name = name
	out, created, err := s.gov.PutPolicy(c.Request.Context(), p, state(c).principal.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, out)
}

func (s *Server) deletePolicy(c *gin.Context) {
	name, ok := s.policyParam(c)
	if !ok || !s.manage(c) {
		return
	}
	if err := s.gov.DeletePolicy(c.Request.Context(), name); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// listEmergencies answers GET /v1/emergencies[?all=true]: the emergency
// changes of the services and groups the caller may read, unreviewed ones
// unless all.
func (s *Server) listEmergencies(c *gin.Context) {
	es, err := s.gov.Emergencies(c.Request.Context(), allParam(c))
	if err != nil {
		s.fail(c, err)
		return
	}
	p := state(c).principal
	out := api.EmergencyList{Emergencies: []api.Emergency{}}
	for _, e := range es {
		if s.authz.Decide(p, access.ActionRead, access.Target{Ref: e.Ref()}).Allowed {
			out.Emergencies = append(out.Emergencies, e)
		}
	}
	c.JSON(http.StatusOK, out)
}

// reviewEmergency answers POST /v1/emergencies/{id}/review: someone other
// than its actor, editor or admin of its service or group, marks an
// emergency change reviewed.
func (s *Server) reviewEmergency(c *gin.Context) {
	id, err := param(c, "id")
	if err == nil {
		err = configsvc.ValidateFileName(id)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	st := state(c)
	st.target = "emergency/" + id
	var req api.ReviewRequest
	if err := decodeOptionalJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	st.authorized = true
	e, err := s.gov.ReviewEmergency(c.Request.Context(), id, st.principal, req.Comment)
	if err != nil {
		s.fail(c, governanceErr(c, err))
		return
	}
	st.service = e.Name
	c.JSON(http.StatusOK, e)
}

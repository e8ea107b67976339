package logs

import (
	"fmt"
	"strings"
	"time"

	"github.com/huntmesh/huntmesh/tasks"
)

// Identity claim keys that name the caller, in order of preference.
const (
	claimName  = "name"
	claimUPN   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
	claimName2 = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
)

// mapAzure maps one Azure Activity Log event, in the diagnostic export
// shape (flat strings, "identity.claims") or the REST shape (fields as
// {value, localizedValue}, "claims" and "caller" at the top).
//
// location is the region of the affected resource: the one in the
// response body of a create or update when present (the VM's own region),
// else the event's. resource_group and resource keep the casing of
// properties.entity when it names the same resource, because exports
// upper-case resourceId ("VM-MINER01" for "VM-Miner01").
func mapAzure(obj map[string]any, loc *time.Location) (tasks.Record, string) {
	f := map[string]any{}
	t, _ := toTime(first(str(obj["time"]), str(obj["eventTimestamp"])), loc)

	op := str(obj["operationName"])
	setStr(f, "operation", op)
	setStr(f, "category", str(obj["category"]))
	status := first(str(obj["resultType"]), str(obj["status"]))
	setStr(f, "status", status)
	setStr(f, "correlation_id", str(obj["correlationId"]))

	// The caller: REST gives it; exports only carry identity claims.
	claims, _ := getPath(obj, "identity.claims").(map[string]any)
	if claims == nil {
		claims, _ = obj["claims"].(map[string]any)
	}
	caller := str(obj["caller"])
	if caller == "" && claims != nil {
		caller = strings.TrimSpace(first(str(claims[claimName]), str(claims[claimUPN]),
			str(claims[claimName2])))
	}
	setStr(f, "caller", caller)
	addr := str(obj["callerIpAddress"])
	if addr == "" {
		addr = first(str(getPath(obj, "httpRequest.clientIpAddress")), str(claims["ipaddr"]))
	}
	setStr(f, "caller_address", addr)

	// The resource: prefer the entity's casing when it is the same ID.
	id := str(obj["resourceId"])
	if entity := str(getPath(obj, "properties.entity")); strings.EqualFold(entity, id) ||
		id == "" {
		id = first(entity, id)
	}
	res := parseResourceID(id)
	setStr(f, "subscription", first(res.subscription, str(obj["subscriptionId"])))
	setStr(f, "resource_group", first(res.group, str(obj["resourceGroupName"])))
	setStr(f, "resource", res.name)
	setStr(f, "resource_type", first(str(obj["resourceType"]), res.typ))

	// The region: a created resource's own, else the event's.
	region := str(obj["location"])
	if body := unquoteJSON(str(getPath(obj, "properties.responseBody"))); body != nil {
		region = first(str(body["location"]), region)
	}
	setStr(f, "location", region)

	if op == "" && id == "" {
		return tasks.Record{}, "not an activity event"
	}
	f["message"] = azureMessage(f, op, str(getPath(obj, "properties.statusCode")),
		str(obj["resultSignature"]))
	return tasks.Record{Kind: tasks.KindCloudActivity, Time: t, Fields: f}, ""
}

// resourceID is a parsed Azure resource ID.
type resourceID struct {
	subscription, group, typ, name string
}

// parseResourceID splits "/subscriptions/S/resourceGroups/G/providers/
// NS/type/name[/subtype/subname]". A bare resource group ID names the group.
func parseResourceID(id string) resourceID {
	var r resourceID
	parts := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(parts); i += 2 {
		switch strings.ToLower(parts[i]) {
		case "subscriptions":
			r.subscription = parts[i+1]
			r.name, r.typ = parts[i+1], "Microsoft.Resources/subscriptions"
		case "resourcegroups":
			r.group = parts[i+1]
			r.name, r.typ = parts[i+1], "Microsoft.Resources/resourceGroups"
		case "providers":
			rest := parts[i+1:]
			if len(rest) < 3 {
				return r
			}
			typ := []string{rest[0]}
			for j := 1; j+1 < len(rest); j += 2 {
				typ = append(typ, rest[j])
				r.name = rest[j+1]
			}
			r.typ = strings.Join(typ, "/")
			return r
		}
	}
	return r
}

// azureMessage says in one line who did what to which resource where:
// "Create VM VM-Miner01 in eastus by cloud-admin from 10.20.1.15".
func azureMessage(f map[string]any, op, statusCode, signature string) string {
	str := func(k string) string { s, _ := f[k].(string); return s }
	verb := "Run " + op
	lower := strings.ToLower(op)
	switch {
	case strings.HasSuffix(lower, "/write"):
		verb = "Update"
		if strings.Contains(signature+statusCode, "Created") {
			verb = "Create"
		}
	case strings.HasSuffix(lower, "/delete"):
		verb = "Delete"
	case strings.HasSuffix(lower, "/action"):
		parts := strings.Split(op, "/")
		if len(parts) >= 2 {
			verb = "Action " + strings.ToLower(parts[len(parts)-2]) + " on"
		}
	}
	msg := fmt.Sprintf("%s %s %s", verb, friendlyType(str("resource_type")), str("resource"))
	if l := str("location"); l != "" {
		msg += " in " + l
	}
	if c := str("caller"); c != "" {
		msg += " by " + c
	}
	if a := str("caller_address"); a != "" {
		msg += " from " + a
	}
	if s := str("status"); s != "" && !strings.HasPrefix(s, "Succe") {
		msg += " (" + s + ")"
	}
	return msg
}

// friendlyType names common resource types the way people say them.
func friendlyType(typ string) string {
	switch strings.ToLower(typ) {
	case "microsoft.compute/virtualmachines":
		return "VM"
	case "microsoft.resources/resourcegroups":
		return "resource group"
	case "microsoft.resources/subscriptions":
		return "subscription"
	}
	if i := strings.LastIndexByte(typ, '/'); i >= 0 {
		return typ[i+1:]
	}
	return typ
}

//! Label sets of Prometheus 3.14's `pod_test.go`, `node_test.go` and `service_test.go`.

use super::*;
use serde_json::json;

/// Each target as one label set: address, group labels and meta labels.
fn sets(role: &str, o: &Value) -> Vec<BTreeMap<String, String>> {
    build(role, o)
        .into_iter()
        .map(|g| {
            let mut m = g.meta;
            m.extend(g.group.labels);
            assert_eq!(g.group.targets.len(), 1);
            m.insert("__address__".into(), g.group.targets[0].clone());
            m
        })
        .collect()
}

fn ls(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `makeMultiPortPods`, with an init container added.
fn multi_port_pod() -> Value {
    json!({
        "metadata": {
            "name": "testpod", "namespace": "default", "uid": "abc123",
            "labels": {"test/label": "testvalue"},
            "annotations": {"test/annotation": "testannotationvalue"},
            "ownerReferences": [{"kind": "testcontrollerkind", "name": "testcontrollername", "controller": true}]
        },
        "spec": {
            "nodeName": "testnode",
            "containers": [
                {"name": "testcontainer0", "image": "testcontainer0:latest", "ports": [
                    {"name": "testport0", "protocol": "TCP", "containerPort": 9000},
                    {"name": "testport1", "protocol": "UDP", "containerPort": 9001}
                ]},
                {"name": "testcontainer1", "image": "testcontainer1:latest"}
            ],
            "initContainers": [{"name": "initcontainer", "image": "initcontainer:latest"}]
        },
        "status": {
            "podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "testcontainer0", "containerID": "docker://a1b2c3d4e5f6"},
                {"name": "testcontainer1", "containerID": "containerd://6f5e4d3c2b1a"}
            ],
            "initContainerStatuses": [{"name": "initcontainer", "containerID": "containerd://init"}]
        }
    })
}

#[test]
fn pod_one_target_per_port_and_one_per_portless_container() {
    let group = [
        ("__meta_kubernetes_pod_name", "testpod"),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_pod_label_test_label", "testvalue"),
        ("__meta_kubernetes_pod_labelpresent_test_label", "true"),
        (
            "__meta_kubernetes_pod_annotation_test_annotation",
            "testannotationvalue",
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_test_annotation",
            "true",
        ),
        ("__meta_kubernetes_pod_node_name", "testnode"),
        ("__meta_kubernetes_pod_ip", "1.2.3.4"),
        ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_uid", "abc123"),
        (
            "__meta_kubernetes_pod_controller_kind",
            "testcontrollerkind",
        ),
        (
            "__meta_kubernetes_pod_controller_name",
            "testcontrollername",
        ),
    ];
    let with = |t: &[(&str, &str)]| {
        let mut m = ls(&group);
        m.extend(ls(t));
        m
    };
    let want = vec![
        with(&[
            ("__address__", "1.2.3.4:9000"),
            ("__meta_kubernetes_pod_container_name", "testcontainer0"),
            (
                "__meta_kubernetes_pod_container_image",
                "testcontainer0:latest",
            ),
            ("__meta_kubernetes_pod_container_port_name", "testport0"),
            ("__meta_kubernetes_pod_container_port_number", "9000"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
            (
                "__meta_kubernetes_pod_container_id",
                "docker://a1b2c3d4e5f6",
            ),
        ]),
        with(&[
            ("__address__", "1.2.3.4:9001"),
            ("__meta_kubernetes_pod_container_name", "testcontainer0"),
            (
                "__meta_kubernetes_pod_container_image",
                "testcontainer0:latest",
            ),
            ("__meta_kubernetes_pod_container_port_name", "testport1"),
            ("__meta_kubernetes_pod_container_port_number", "9001"),
            ("__meta_kubernetes_pod_container_port_protocol", "UDP"),
            ("__meta_kubernetes_pod_container_init", "false"),
            (
                "__meta_kubernetes_pod_container_id",
                "docker://a1b2c3d4e5f6",
            ),
        ]),
        with(&[
            ("__address__", "1.2.3.4"),
            ("__meta_kubernetes_pod_container_name", "testcontainer1"),
            (
                "__meta_kubernetes_pod_container_image",
                "testcontainer1:latest",
            ),
            ("__meta_kubernetes_pod_container_init", "false"),
            (
                "__meta_kubernetes_pod_container_id",
                "containerd://6f5e4d3c2b1a",
            ),
        ]),
        with(&[
            ("__address__", "1.2.3.4"),
            ("__meta_kubernetes_pod_container_name", "initcontainer"),
            (
                "__meta_kubernetes_pod_container_image",
                "initcontainer:latest",
            ),
            ("__meta_kubernetes_pod_container_init", "true"),
            ("__meta_kubernetes_pod_container_id", "containerd://init"),
        ]),
    ];
    assert_eq!(sets("pod", &multi_port_pod()), want);
}

#[test]
fn pod_without_ip_has_no_targets_and_ready_defaults_to_unknown() {
    let mut p = multi_port_pod();
    p["status"]["podIP"] = json!("");
    assert!(sets("pod", &p).is_empty());
    let mut p = multi_port_pod();
    p["status"]["conditions"] = json!([]);
    p["metadata"]["ownerReferences"] = json!([{"kind": "X", "name": "y"}]);
    let t = &sets("pod", &p)[0];
    assert_eq!(t["__meta_kubernetes_pod_ready"], "unknown");
    assert!(!t.contains_key("__meta_kubernetes_pod_controller_kind"));
    p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
    assert_eq!(sets("pod", &p)[0]["__meta_kubernetes_pod_ready"], "false");
}

#[test]
fn node_address_and_labels() {
    // `makeNode("test", "1.2.3.4", "", map{"test-label": "testvalue"}, map{"test-annotation": ...})`
    let n = json!({
        "metadata": {"name": "test", "labels": {"test-label": "testvalue"},
                     "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": {"providerID": "aws:///de-west-3a/i-abc"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "1.2.3.4"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "MemoryPressure", "status": "False"}]
        }
    });
    assert_eq!(
        sets("node", &n),
        vec![ls(&[
            ("__address__", "1.2.3.4:10250"),
            ("instance", "test"),
            ("__meta_kubernetes_node_address_InternalIP", "1.2.3.4"),
            ("__meta_kubernetes_node_name", "test"),
            (
                "__meta_kubernetes_node_provider_id",
                "aws:///de-west-3a/i-abc"
            ),
            ("__meta_kubernetes_node_label_test_label", "testvalue"),
            ("__meta_kubernetes_node_labelpresent_test_label", "true"),
            (
                "__meta_kubernetes_node_annotation_test_annotation",
                "testannotationvalue"
            ),
            (
                "__meta_kubernetes_node_annotationpresent_test_annotation",
                "true"
            ),
            ("__meta_kubernetes_node_condition_ready", "true"),
            ("__meta_kubernetes_node_condition_memorypressure", "false"),
        ])]
    );
}

#[test]
fn node_address_preference_order() {
    let node = |addrs: Value| {
        json!({"metadata": {"name": "n"}, "status": {"addresses": addrs,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}})
    };
    let n = node(json!([
        {"type": "Hostname", "address": "host"},
        {"type": "ExternalIP", "address": "5.6.7.8"},
        {"type": "InternalDNS", "address": "n.internal"},
        {"type": "ExternalIP", "address": "9.9.9.9"}
    ]));
    let t = &sets("node", &n)[0];
    assert_eq!(t["__address__"], "n.internal:10250");
    assert_eq!(t["__meta_kubernetes_node_address_ExternalIP"], "5.6.7.8");
    assert_eq!(t["__meta_kubernetes_node_address_Hostname"], "host");
    let n = node(json!([{"type": "Hostname", "address": "host"}]));
    assert_eq!(sets("node", &n)[0]["__address__"], "host:10250");
    let n = node(json!([{"type": "InternalIP", "address": "fd00::1"}]));
    assert_eq!(sets("node", &n)[0]["__address__"], "[fd00::1]:10250");
    assert!(sets("node", &node(json!([]))).is_empty());
}

#[test]
fn service_targets_per_port() {
    // `makeMultiPortService`.
    let svc = json!({
        "metadata": {"name": "testservice", "namespace": "default",
                     "labels": {"test-label": "testvalue"},
                     "annotations": {"test-annotation": "testannotationvalue"}},
        "spec": {"ports": [
            {"name": "testport0", "protocol": "TCP", "port": 30900},
            {"name": "testport1", "protocol": "UDP", "port": 30901}
        ], "type": "ClusterIP", "clusterIP": "10.0.0.1"}
    });
    let group = ls(&[
        ("__meta_kubernetes_service_label_test_label", "testvalue"),
        ("__meta_kubernetes_service_labelpresent_test_label", "true"),
        (
            "__meta_kubernetes_service_annotation_test_annotation",
            "testannotationvalue",
        ),
        (
            "__meta_kubernetes_service_annotationpresent_test_annotation",
            "true",
        ),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_service_name", "testservice"),
    ]);
    let mut a = group.clone();
    a.extend(ls(&[
        ("__address__", "testservice.default.svc:30900"),
        ("__meta_kubernetes_service_type", "ClusterIP"),
        ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
        ("__meta_kubernetes_service_port_name", "testport0"),
        ("__meta_kubernetes_service_port_number", "30900"),
        ("__meta_kubernetes_service_port_protocol", "TCP"),
    ]));
    let mut b = group.clone();
    b.extend(ls(&[
        ("__address__", "testservice.default.svc:30901"),
        ("__meta_kubernetes_service_type", "ClusterIP"),
        ("__meta_kubernetes_service_cluster_ip", "10.0.0.1"),
        ("__meta_kubernetes_service_port_name", "testport1"),
        ("__meta_kubernetes_service_port_number", "30901"),
        ("__meta_kubernetes_service_port_protocol", "UDP"),
    ]));
    assert_eq!(sets("service", &svc), vec![a, b]);

    // `makeExternalService` and a load balancer.
    let ext = json!({"metadata": {"name": "testservice-external", "namespace": "default"},
        "spec": {"ports": [{"name": "testport", "protocol": "TCP", "port": 31900}],
                 "type": "ExternalName", "externalName": "FooExternalName"}});
    let t = &sets("service", &ext)[0];
    assert_eq!(
        t["__meta_kubernetes_service_external_name"],
        "FooExternalName"
    );
    assert!(!t.contains_key("__meta_kubernetes_service_cluster_ip"));
    let lb = json!({"metadata": {"name": "lb", "namespace": "ns"},
        "spec": {"ports": [{"name": "p", "protocol": "TCP", "port": 80}],
                 "type": "LoadBalancer", "clusterIP": "10.0.0.2", "loadBalancerIP": "1.1.1.1"}});
    let t = &sets("service", &lb)[0];
    assert_eq!(t["__meta_kubernetes_service_loadbalancer_ip"], "1.1.1.1");
    assert_eq!(t["__meta_kubernetes_service_cluster_ip"], "10.0.0.2");
}

#[test]
fn label_names_are_sanitized_like_strutil() {
    assert_eq!(
        sanitize_label_name("app.kubernetes.io/name"),
        "app_kubernetes_io_name"
    );
    assert_eq!(sanitize_label_name("a-b_c9"), "a_b_c9");
}

/// `makeEndpointSliceV1`.
fn endpoint_slice(ns: &str) -> Value {
    json!({
        "metadata": {"name": "testendpoints", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": "testendpoints"},
                     "annotations": {"test.annotation": "test"}},
        "addressType": "IPv4",
        "ports": [{"name": "testport", "port": 9000, "protocol": "TCP", "appProtocol": "http"}],
        "endpoints": [
            {"addresses": ["1.2.3.4"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "hostname": "testendpoint1", "targetRef": {}, "nodeName": "foobar",
             "deprecatedTopology": {"topology": "value"}, "zone": "us-east-1a"},
            {"addresses": ["2.3.4.5"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "zone": "us-east-1b"},
            {"addresses": ["3.4.5.6"], "conditions": {"ready": false, "serving": true, "terminating": true},
             "zone": "us-east-1c"},
            {"addresses": ["4.5.6.7"], "conditions": {"ready": true, "serving": true, "terminating": false},
             "targetRef": {"kind": "Node", "name": "barbaz"}, "zone": "us-east-1a"}
        ]
    })
}

fn slice_sets(
    eps: &Value,
    services: &[(&str, Value)],
    pods: &[(&str, Value)],
) -> Vec<BTreeMap<String, String>> {
    let services: HashMap<&str, &Value> = services.iter().map(|(k, v)| (*k, v)).collect();
    let pods: HashMap<&str, &Value> = pods.iter().map(|(k, v)| (*k, v)).collect();
    build_endpoint_slice(eps, &services, &pods, &Meta::default())
}

/// `TestEndpointSliceDiscoveryWithService`.
#[test]
fn endpointslice_with_service() {
    let svc = json!({"metadata": {"name": "testendpoints", "namespace": "default",
                                  "labels": {"app/name": "test"}}});
    let got = slice_sets(
        &endpoint_slice("default"),
        &[("default/testendpoints", svc)],
        &[],
    );
    let group = ls(&[
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        ("__meta_kubernetes_endpointslice_name", "testendpoints"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "testendpoints",
        ),
        (
            "__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_annotation_test_annotation",
            "test",
        ),
        (
            "__meta_kubernetes_endpointslice_annotationpresent_test_annotation",
            "true",
        ),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_service_label_app_name", "test"),
        ("__meta_kubernetes_service_labelpresent_app_name", "true"),
        ("__meta_kubernetes_service_name", "testendpoints"),
    ]);
    let port = [
        ("__meta_kubernetes_endpointslice_port", "9000"),
        ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
        ("__meta_kubernetes_endpointslice_port_name", "testport"),
        ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
    ];
    let with = |t: &[(&str, &str)]| {
        let mut m = group.clone();
        m.extend(ls(&port));
        m.extend(ls(t));
        m
    };
    let cond = |r: &'static str, s: &'static str, t: &'static str| {
        [
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
                r,
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
                s,
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_terminating",
                t,
            ),
        ]
    };
    let want = vec![
        with(
            &[
                &[
                    ("__address__", "1.2.3.4:9000"),
                    ("__meta_kubernetes_endpointslice_address_target_kind", ""),
                    ("__meta_kubernetes_endpointslice_address_target_name", ""),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_hostname",
                        "testendpoint1",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_node_name",
                        "foobar",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_topology_present_topology",
                        "true",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_topology_topology",
                        "value",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_zone",
                        "us-east-1a",
                    ),
                ][..],
                &cond("true", "true", "false"),
            ]
            .concat(),
        ),
        with(
            &[
                &[
                    ("__address__", "2.3.4.5:9000"),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_zone",
                        "us-east-1b",
                    ),
                ][..],
                &cond("true", "true", "false"),
            ]
            .concat(),
        ),
        with(
            &[
                &[
                    ("__address__", "3.4.5.6:9000"),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_zone",
                        "us-east-1c",
                    ),
                ][..],
                &cond("false", "true", "true"),
            ]
            .concat(),
        ),
        with(
            &[
                &[
                    ("__address__", "4.5.6.7:9000"),
                    (
                        "__meta_kubernetes_endpointslice_address_target_kind",
                        "Node",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_address_target_name",
                        "barbaz",
                    ),
                    (
                        "__meta_kubernetes_endpointslice_endpoint_zone",
                        "us-east-1a",
                    ),
                ][..],
                &cond("true", "true", "false"),
            ]
            .concat(),
        ),
    ];
    assert_eq!(got, want);
    // Without its service, the slice's targets lack the service labels.
    let got = slice_sets(&endpoint_slice("default"), &[], &[]);
    assert_eq!(got.len(), 4);
    assert!(!got[0].contains_key("__meta_kubernetes_service_name"));
}

/// The `ns2` slice of `TestEndpointSliceDiscoveryNamespaces`, plus a second container port
/// that becomes a target of its own.
#[test]
fn endpointslice_with_pod() {
    let eps = json!({
        "metadata": {"name": "testendpoints", "namespace": "ns2"},
        "addressType": "IPv4",
        "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["4.3.2.1"],
                       "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "ns2"}}]
    });
    let pod = json!({
        "metadata": {"name": "testpod", "namespace": "ns2", "uid": "deadbeef"},
        "spec": {"nodeName": "testnode", "containers": [{"name": "c1", "image": "c1:latest",
            "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"},
                      {"name": "extra", "containerPort": 9100, "protocol": "TCP"}]}]},
        "status": {"hostIP": "2.3.4.5", "podIP": "4.3.2.1"}
    });
    let got = slice_sets(&eps, &[], &[("ns2/testpod", pod)]);
    let group = [
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        ("__meta_kubernetes_endpointslice_name", "testendpoints"),
        ("__meta_kubernetes_namespace", "ns2"),
    ];
    let pod_ls = [
        ("__meta_kubernetes_pod_container_name", "c1"),
        ("__meta_kubernetes_pod_container_image", "c1:latest"),
        ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
        ("__meta_kubernetes_pod_ip", "4.3.2.1"),
        ("__meta_kubernetes_pod_name", "testpod"),
        ("__meta_kubernetes_pod_node_name", "testnode"),
        ("__meta_kubernetes_pod_phase", ""),
        ("__meta_kubernetes_pod_ready", "unknown"),
        ("__meta_kubernetes_pod_uid", "deadbeef"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ];
    let want = vec![
        ls(&[
            &group[..],
            &pod_ls[..],
            &[
                ("__address__", "4.3.2.1:9000"),
                ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
                (
                    "__meta_kubernetes_endpointslice_address_target_name",
                    "testpod",
                ),
                ("__meta_kubernetes_endpointslice_port", "9000"),
                ("__meta_kubernetes_endpointslice_port_name", "testport"),
                ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
                ("__meta_kubernetes_pod_container_port_name", "mainport"),
                ("__meta_kubernetes_pod_container_port_number", "9000"),
            ][..],
        ]
        .concat()),
        ls(&[
            &group[..],
            &pod_ls[..],
            &[
                ("__address__", "4.3.2.1:9100"),
                ("__meta_kubernetes_pod_container_port_name", "extra"),
                ("__meta_kubernetes_pod_container_port_number", "9100"),
            ][..],
        ]
        .concat()),
    ];
    assert_eq!(got, want);
}

#[test]
fn endpointslice_of_a_dual_stack_services_second_family_is_skipped() {
    let mut eps = endpoint_slice("default");
    eps["addressType"] = json!("IPv6");
    let svc = json!({"metadata": {"name": "testendpoints", "namespace": "default"},
        "spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}});
    assert!(slice_sets(&eps, &[("default/testendpoints", svc.clone())], &[]).is_empty());
    eps["addressType"] = json!("IPv4");
    assert_eq!(
        slice_sets(&eps, &[("default/testendpoints", svc)], &[]).len(),
        4
    );
}

/// `makeIngress` and `expectedTargetGroups` for each TLS mode.
#[test]
fn ingress_targets_per_rule_path() {
    let ingress = |tls: Value| {
        json!({
            "metadata": {"name": "testingress", "namespace": "default",
                         "labels": {"test/label": "testvalue"},
                         "annotations": {"test/annotation": "testannotationvalue"}},
            "spec": {"ingressClassName": "testclass", "tls": tls, "rules": [
                {"host": "example.com", "http": {"paths": [{"path": "/"}, {"path": "/foo"}]}},
                {"host": "nobackend.example.com", "http": {"paths": null}},
                {"host": "test.example.com", "http": {"paths": [{}]}}
            ]}
        })
    };
    let group = [
        ("__meta_kubernetes_ingress_name", "testingress"),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_ingress_label_test_label", "testvalue"),
        ("__meta_kubernetes_ingress_labelpresent_test_label", "true"),
        (
            "__meta_kubernetes_ingress_annotation_test_annotation",
            "testannotationvalue",
        ),
        (
            "__meta_kubernetes_ingress_annotationpresent_test_annotation",
            "true",
        ),
        ("__meta_kubernetes_ingress_class_name", "testclass"),
    ];
    let want = |s1: &str, s2: &str| {
        vec![
            ls(&[
                &group[..],
                &[
                    ("__address__", "example.com"),
                    ("__meta_kubernetes_ingress_scheme", s1),
                    ("__meta_kubernetes_ingress_host", "example.com"),
                    ("__meta_kubernetes_ingress_path", "/"),
                ][..],
            ]
            .concat()),
            ls(&[
                &group[..],
                &[
                    ("__address__", "example.com"),
                    ("__meta_kubernetes_ingress_scheme", s1),
                    ("__meta_kubernetes_ingress_host", "example.com"),
                    ("__meta_kubernetes_ingress_path", "/foo"),
                ][..],
            ]
            .concat()),
            ls(&[
                &group[..],
                &[
                    ("__address__", "test.example.com"),
                    ("__meta_kubernetes_ingress_scheme", s2),
                    ("__meta_kubernetes_ingress_host", "test.example.com"),
                    ("__meta_kubernetes_ingress_path", "/"),
                ][..],
            ]
            .concat()),
        ]
    };
    assert_eq!(sets("ingress", &ingress(Value::Null)), want("http", "http"));
    assert_eq!(
        sets(
            "ingress",
            &ingress(json!([{"hosts": ["example.com", "test.example.com"]}]))
        ),
        want("https", "https")
    );
    assert_eq!(
        sets("ingress", &ingress(json!([{"hosts": ["example.com"]}]))),
        want("https", "http")
    );
    assert_eq!(
        sets("ingress", &ingress(json!([{"hosts": ["*.example.com"]}]))),
        want("http", "https")
    );
}

fn endpoints_sets(
    eps: &Value,
    services: &[(&str, Value)],
    pods: &[(&str, Value)],
) -> Vec<BTreeMap<String, String>> {
    let services: HashMap<&str, &Value> = services.iter().map(|(k, v)| (*k, v)).collect();
    let pods: HashMap<&str, &Value> = pods.iter().map(|(k, v)| (*k, v)).collect();
    build_endpoints(eps, &services, &pods, &Meta::default())
}

/// `makeEndpoints` and `TestEndpointsDiscoveryBeforeRun`.
#[test]
fn endpoints_one_target_per_address_and_port() {
    let eps = json!({
        "metadata": {"name": "testendpoints", "namespace": "default",
                     "annotations": {"test.annotation": "test"}},
        "subsets": [
            {"addresses": [{"ip": "1.2.3.4", "hostname": "testendpoint1", "nodeName": "foobar"}],
             "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]},
            {"addresses": [{"ip": "2.3.4.5"}], "notReadyAddresses": [{"ip": "2.3.4.5"}],
             "ports": [{"name": "testport", "port": 9001, "protocol": "TCP"}]},
            {"addresses": [{"ip": "6.7.8.9", "targetRef": {"kind": "Node", "name": "barbaz"}}],
             "ports": [{"name": "testport", "port": 9002, "protocol": "TCP"}]}
        ]
    });
    let group = [
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_endpoints_name", "testendpoints"),
        (
            "__meta_kubernetes_endpoints_annotation_test_annotation",
            "test",
        ),
        (
            "__meta_kubernetes_endpoints_annotationpresent_test_annotation",
            "true",
        ),
    ];
    let port = |ready: &'static str| {
        [
            ("__meta_kubernetes_endpoint_port_name", "testport"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", ready),
        ]
    };
    let want = vec![
        ls(&[
            &group[..],
            &port("true")[..],
            &[
                ("__address__", "1.2.3.4:9000"),
                ("__meta_kubernetes_endpoint_hostname", "testendpoint1"),
                ("__meta_kubernetes_endpoint_node_name", "foobar"),
            ][..],
        ]
        .concat()),
        ls(&[
            &group[..],
            &port("true")[..],
            &[("__address__", "2.3.4.5:9001")][..],
        ]
        .concat()),
        ls(&[
            &group[..],
            &port("false")[..],
            &[("__address__", "2.3.4.5:9001")][..],
        ]
        .concat()),
        ls(&[
            &group[..],
            &port("true")[..],
            &[
                ("__address__", "6.7.8.9:9002"),
                ("__meta_kubernetes_endpoint_address_target_kind", "Node"),
                ("__meta_kubernetes_endpoint_address_target_name", "barbaz"),
            ][..],
        ]
        .concat()),
    ];
    assert_eq!(endpoints_sets(&eps, &[], &[]), want);
}

/// `TestEndpointsDiscoveryAdd`: a pod behind the endpoints, and its other port.
#[test]
fn endpoints_with_pod() {
    let pod = json!({
        "metadata": {"name": "testpod", "namespace": "default", "uid": "deadbeef"},
        "spec": {"nodeName": "testnode", "containers": [
            {"name": "c1", "image": "c1:latest", "ports": [{"name": "mainport", "containerPort": 9000, "protocol": "TCP"}]},
            {"name": "c2", "image": "c2:latest", "ports": [{"name": "sideport", "containerPort": 9001, "protocol": "TCP"}]}
        ]},
        "status": {"hostIP": "2.3.4.5", "podIP": "1.2.3.4"}
    });
    let eps = json!({
        "metadata": {"name": "testendpoints", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "4.3.2.1",
                                    "targetRef": {"kind": "Pod", "name": "testpod", "namespace": "default"}}],
                     "ports": [{"name": "testport", "port": 9000, "protocol": "TCP"}]}]
    });
    let svc = json!({"metadata": {"name": "testendpoints", "namespace": "default",
                                  "labels": {"app/name": "test"}}});
    let pod_ls = [
        ("__meta_kubernetes_endpoints_name", "testendpoints"),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_service_name", "testendpoints"),
        ("__meta_kubernetes_service_label_app_name", "test"),
        ("__meta_kubernetes_service_labelpresent_app_name", "true"),
        ("__meta_kubernetes_pod_name", "testpod"),
        ("__meta_kubernetes_pod_ip", "1.2.3.4"),
        ("__meta_kubernetes_pod_ready", "unknown"),
        ("__meta_kubernetes_pod_phase", ""),
        ("__meta_kubernetes_pod_node_name", "testnode"),
        ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
        ("__meta_kubernetes_pod_uid", "deadbeef"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ];
    let want = vec![
        ls(&[
            &pod_ls[..],
            &[
                ("__address__", "4.3.2.1:9000"),
                ("__meta_kubernetes_endpoint_port_name", "testport"),
                ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
                ("__meta_kubernetes_endpoint_ready", "true"),
                ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
                ("__meta_kubernetes_endpoint_address_target_name", "testpod"),
                ("__meta_kubernetes_pod_container_name", "c1"),
                ("__meta_kubernetes_pod_container_image", "c1:latest"),
                ("__meta_kubernetes_pod_container_port_name", "mainport"),
                ("__meta_kubernetes_pod_container_port_number", "9000"),
            ][..],
        ]
        .concat()),
        ls(&[
            &pod_ls[..],
            &[
                ("__address__", "1.2.3.4:9001"),
                ("__meta_kubernetes_pod_container_name", "c2"),
                ("__meta_kubernetes_pod_container_image", "c2:latest"),
                ("__meta_kubernetes_pod_container_port_name", "sideport"),
                ("__meta_kubernetes_pod_container_port_number", "9001"),
            ][..],
        ]
        .concat()),
    ];
    assert_eq!(
        endpoints_sets(
            &eps,
            &[("default/testendpoints", svc)],
            &[("default/testpod", pod)]
        ),
        want
    );
}

// ---------------------------------------------------------------------------------------------
// attach_metadata: label sets of `TestPodDiscoveryWith*Metadata`, `TestPodDiscoveryWith
// {Deployment,Job,CronJob}*` and `TestEndpointsSlicesDiscoveryWith*Metadata`.

/// Every target of `role` from `objects` (resource plural, object), as the running discovery
/// builds them.
fn attached_sets(
    role: &str,
    objects: &[(&'static str, Value)],
    attach: &KubernetesAttachMetadata,
) -> Vec<BTreeMap<String, String>> {
    let mut store: BTreeMap<(&'static str, String), BTreeMap<String, Value>> = BTreeMap::new();
    for r in resources_of(role).unwrap() {
        store.entry((r.plural, String::new())).or_default();
    }
    for (plural, o) in objects {
        store
            .entry((plural, String::new()))
            .or_default()
            .insert(object_key(o), o.clone());
    }
    build_all(role, &store, attach)
        .into_iter()
        .map(|g| {
            let mut m = g.meta;
            m.extend(g.group.labels);
            m.insert("__address__".into(), g.group.targets[0].clone());
            m
        })
        .collect()
}

/// `makePods`, with `owner` as its controller.
fn simple_pod(ns: &str, owner: Option<(&str, &str)>) -> Value {
    let mut p = json!({
        "metadata": {"name": "testpod", "namespace": ns, "uid": "abc123"},
        "spec": {"nodeName": "testnode", "containers": [{"name": "testcontainer",
            "image": "testcontainer:latest",
            "ports": [{"name": "testport", "protocol": "TCP", "containerPort": 9000}]}]},
        "status": {"podIP": "1.2.3.4", "hostIP": "2.3.4.5", "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "testcontainer", "containerID": "docker://a1b2c3d4e5f6"}]}
    });
    if let Some((kind, name)) = owner {
        p["metadata"]["uid"] = json!("pod123");
        p["metadata"]["ownerReferences"] =
            json!([{"kind": kind, "name": name, "controller": true}]);
    }
    p
}

fn simple_pod_labels(ns: &str, uid: &str) -> BTreeMap<String, String> {
    ls(&[
        ("__address__", "1.2.3.4:9000"),
        (
            "__meta_kubernetes_pod_container_image",
            "testcontainer:latest",
        ),
        ("__meta_kubernetes_pod_container_name", "testcontainer"),
        ("__meta_kubernetes_pod_container_port_name", "testport"),
        ("__meta_kubernetes_pod_container_port_number", "9000"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
        ("__meta_kubernetes_pod_container_init", "false"),
        (
            "__meta_kubernetes_pod_container_id",
            "docker://a1b2c3d4e5f6",
        ),
        ("__meta_kubernetes_namespace", ns),
        ("__meta_kubernetes_pod_name", "testpod"),
        ("__meta_kubernetes_pod_ip", "1.2.3.4"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_node_name", "testnode"),
        ("__meta_kubernetes_pod_host_ip", "2.3.4.5"),
        ("__meta_kubernetes_pod_uid", uid),
    ])
}

fn attach(f: impl FnOnce(&mut KubernetesAttachMetadata)) -> KubernetesAttachMetadata {
    let mut a = KubernetesAttachMetadata::default();
    f(&mut a);
    a
}

/// `TestPodDiscoveryWithNodeMetadata` and `TestPodDiscoveryWithNodeSelector` (a pod on a node
/// the node watch does not hold has no targets).
#[test]
fn pod_with_node_metadata() {
    let node = json!({"metadata": {"name": "testnode", "labels": {"l1": "v1"}}});
    let a = attach(|a| a.node = true);
    let got = attached_sets(
        "pod",
        &[("pods", simple_pod("default", None)), ("nodes", node)],
        &a,
    );
    let mut want = simple_pod_labels("default", "abc123");
    want.extend(ls(&[
        ("__meta_kubernetes_node_name", "testnode"),
        ("__meta_kubernetes_node_label_l1", "v1"),
        ("__meta_kubernetes_node_labelpresent_l1", "true"),
    ]));
    assert_eq!(got, [want]);
    let other = json!({"metadata": {"name": "othernode"}});
    let got = attached_sets(
        "pod",
        &[("pods", simple_pod("default", None)), ("nodes", other)],
        &a,
    );
    assert!(got.is_empty(), "{got:?}");
    // Without attach_metadata the node watch is not consulted.
    let got = attached_sets(
        "pod",
        &[("pods", simple_pod("default", None))],
        &Default::default(),
    );
    assert_eq!(got, [simple_pod_labels("default", "abc123")]);
}

/// `TestPodDiscoveryWithNamespaceMetadata`.
#[test]
fn pod_with_namespace_metadata() {
    let ns = json!({"metadata": {"name": "test-ns",
        "labels": {"app": "web", "tier": "frontend"},
        "annotations": {"maintainer": "devops", "build": "v3.4.5"}}});
    let got = attached_sets(
        "pod",
        &[("pods", simple_pod("test-ns", None)), ("namespaces", ns)],
        &attach(|a| a.namespace = true),
    );
    let mut want = simple_pod_labels("test-ns", "abc123");
    want.extend(ls(&[
        (
            "__meta_kubernetes_namespace_annotation_maintainer",
            "devops",
        ),
        (
            "__meta_kubernetes_namespace_annotationpresent_maintainer",
            "true",
        ),
        ("__meta_kubernetes_namespace_annotation_build", "v3.4.5"),
        (
            "__meta_kubernetes_namespace_annotationpresent_build",
            "true",
        ),
        ("__meta_kubernetes_namespace_label_app", "web"),
        ("__meta_kubernetes_namespace_labelpresent_app", "true"),
        ("__meta_kubernetes_namespace_label_tier", "frontend"),
        ("__meta_kubernetes_namespace_labelpresent_tier", "true"),
    ]));
    assert_eq!(got, [want]);
}

/// `TestPodDiscoveryWithDeployment`, `TestPodDiscoveryWithJob`, `TestPodDiscoveryWithCronJob`
/// (`job: true` only: no cronjob label) and `TestPodDiscoveryWithCronJobUpdate`'s first state
/// (`cronjob: true` only: no job label).
#[test]
fn pod_controller_derived_labels() {
    let rs = json!({"metadata": {"name": "testdeployment-rs-abc", "namespace": "default",
        "ownerReferences": [{"kind": "Deployment", "name": "testdeployment", "controller": true}]}});
    let pod = simple_pod("default", Some(("ReplicaSet", "testdeployment-rs-abc")));
    let got = attached_sets(
        "pod",
        &[("pods", pod.clone()), ("replicasets", rs.clone())],
        &attach(|a| a.deployment = true),
    );
    let mut want = simple_pod_labels("default", "pod123");
    want.extend(ls(&[
        ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
        (
            "__meta_kubernetes_pod_controller_name",
            "testdeployment-rs-abc",
        ),
    ]));
    let without = want.clone();
    want.insert(
        "__meta_kubernetes_pod_deployment_name".into(),
        "testdeployment".into(),
    );
    assert_eq!(got, [want]);
    // Not asked for: no label, even with the replica set known.
    let got = attached_sets(
        "pod",
        &[("pods", pod), ("replicasets", rs)],
        &Default::default(),
    );
    assert_eq!(got, [without]);

    let job = json!({"metadata": {"name": "testcronjob-job-abc", "namespace": "default",
        "ownerReferences": [{"kind": "CronJob", "name": "testcronjob", "controller": true}]}});
    let pod = simple_pod("default", Some(("Job", "testcronjob-job-abc")));
    let mut base = simple_pod_labels("default", "pod123");
    base.extend(ls(&[
        ("__meta_kubernetes_pod_controller_kind", "Job"),
        (
            "__meta_kubernetes_pod_controller_name",
            "testcronjob-job-abc",
        ),
    ]));
    let got = attached_sets(
        "pod",
        &[("pods", pod.clone()), ("jobs", job.clone())],
        &attach(|a| a.job = true),
    );
    let mut want = base.clone();
    want.insert(
        "__meta_kubernetes_pod_job_name".into(),
        "testcronjob-job-abc".into(),
    );
    assert_eq!(got, [want]);
    let got = attached_sets(
        "pod",
        &[("pods", pod), ("jobs", job)],
        &attach(|a| a.cronjob = true),
    );
    let mut want = base;
    want.insert(
        "__meta_kubernetes_pod_cronjob_name".into(),
        "testcronjob".into(),
    );
    assert_eq!(got, [want]);
}

/// `TestEndpointsSlicesDiscoveryWithNodeMetadata`.
#[test]
fn endpointslice_with_node_metadata() {
    let svc = json!({"metadata": {"name": "testendpoints", "namespace": "default",
                                  "labels": {"app/name": "test"}}});
    let got = attached_sets(
        "endpointslice",
        &[
            ("endpointslices", endpoint_slice("default")),
            ("services", svc),
            (
                "nodes",
                json!({"metadata": {"name": "foobar", "labels": {"az": "us-east1"}}}),
            ),
            (
                "nodes",
                json!({"metadata": {"name": "barbaz", "labels": {"az": "us-west2"}}}),
            ),
        ],
        &attach(|a| a.node = true),
    );
    let group = ls(&[
        ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
        ("__meta_kubernetes_endpointslice_name", "testendpoints"),
        (
            "__meta_kubernetes_endpointslice_label_kubernetes_io_service_name",
            "testendpoints",
        ),
        (
            "__meta_kubernetes_endpointslice_labelpresent_kubernetes_io_service_name",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_annotation_test_annotation",
            "test",
        ),
        (
            "__meta_kubernetes_endpointslice_annotationpresent_test_annotation",
            "true",
        ),
        ("__meta_kubernetes_namespace", "default"),
        ("__meta_kubernetes_service_label_app_name", "test"),
        ("__meta_kubernetes_service_labelpresent_app_name", "true"),
        ("__meta_kubernetes_service_name", "testendpoints"),
    ]);
    let t = |pairs: &[(&str, &str)]| {
        let mut m = group.clone();
        m.extend(ls(pairs));
        m
    };
    let common = |ready: &str, term: &str, zone: &'static str| {
        vec![
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_serving",
                "true",
            ),
            ("__meta_kubernetes_endpointslice_endpoint_zone", zone),
            ("__meta_kubernetes_endpointslice_port", "9000"),
            ("__meta_kubernetes_endpointslice_port_app_protocol", "http"),
            ("__meta_kubernetes_endpointslice_port_name", "testport"),
            ("__meta_kubernetes_endpointslice_port_protocol", "TCP"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready".to_string(),
                ready.to_string(),
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_terminating".to_string(),
                term.to_string(),
            ),
        ])
        .collect::<BTreeMap<_, _>>()
    };
    let mut t1 = t(&[
        ("__address__", "1.2.3.4:9000"),
        ("__meta_kubernetes_endpointslice_address_target_kind", ""),
        ("__meta_kubernetes_endpointslice_address_target_name", ""),
        (
            "__meta_kubernetes_endpointslice_endpoint_hostname",
            "testendpoint1",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_node_name",
            "foobar",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_topology_present_topology",
            "true",
        ),
        (
            "__meta_kubernetes_endpointslice_endpoint_topology_topology",
            "value",
        ),
        ("__meta_kubernetes_node_label_az", "us-east1"),
        ("__meta_kubernetes_node_labelpresent_az", "true"),
        ("__meta_kubernetes_node_name", "foobar"),
    ]);
    t1.extend(common("true", "false", "us-east-1a"));
    let mut t2 = t(&[("__address__", "2.3.4.5:9000")]);
    t2.extend(common("true", "false", "us-east-1b"));
    let mut t3 = t(&[("__address__", "3.4.5.6:9000")]);
    t3.extend(common("false", "true", "us-east-1c"));
    let mut t4 = t(&[
        ("__address__", "4.5.6.7:9000"),
        (
            "__meta_kubernetes_endpointslice_address_target_kind",
            "Node",
        ),
        (
            "__meta_kubernetes_endpointslice_address_target_name",
            "barbaz",
        ),
        ("__meta_kubernetes_node_label_az", "us-west2"),
        ("__meta_kubernetes_node_labelpresent_az", "true"),
        ("__meta_kubernetes_node_name", "barbaz"),
    ]);
    t4.extend(common("true", "false", "us-east-1a"));
    assert_eq!(got, [t1, t2, t3, t4]);
}

/// Namespace metadata on the service, ingress, endpoints and endpointslice roles (group
/// labels, as `TestEndpointsSlicesDiscoveryWithNamespaceMetadata` etc.), none on node.
#[test]
fn namespace_metadata_on_every_namespaced_role() {
    let ns = json!({"metadata": {"name": "default", "labels": {"team": "a"},
                                 "annotations": {"x.y/z": "w"}}});
    let want = ls(&[
        ("__meta_kubernetes_namespace_label_team", "a"),
        ("__meta_kubernetes_namespace_labelpresent_team", "true"),
        ("__meta_kubernetes_namespace_annotation_x_y_z", "w"),
        (
            "__meta_kubernetes_namespace_annotationpresent_x_y_z",
            "true",
        ),
    ]);
    let svc = json!({"metadata": {"name": "s", "namespace": "default"},
                     "spec": {"ports": [{"port": 80}]}});
    let ing = json!({"metadata": {"name": "i", "namespace": "default"},
                     "spec": {"rules": [{"host": "h"}]}});
    let eps = json!({"metadata": {"name": "s", "namespace": "default"},
                     "subsets": [{"addresses": [{"ip": "1.1.1.1"}], "ports": [{"port": 80}]}]});
    let a = attach(|a| a.namespace = true);
    for (role, plural, o) in [
        ("service", "services", svc),
        ("ingress", "ingresses", ing),
        ("endpoints", "endpoints", eps),
        ("endpointslice", "endpointslices", endpoint_slice("default")),
    ] {
        let got = attached_sets(role, &[(plural, o), ("namespaces", ns.clone())], &a);
        assert!(!got.is_empty(), "{role}");
        for t in got {
            for (k, v) in &want {
                assert_eq!(t.get(k), Some(v), "{role}: {t:?}");
            }
        }
    }
}

/// The events and failures counters are always exposed, every series initialised.
#[test]
fn metrics_render_every_series() {
    let m = render_metrics();
    assert!(m.contains("# TYPE prometheus_sd_kubernetes_events_total counter\n"));
    assert_eq!(
        m.matches("prometheus_sd_kubernetes_events_total{").count(),
        18
    );
    assert!(
        m.contains("prometheus_sd_kubernetes_events_total{event=\"add\",role=\"endpointslice\"} ")
    );
    assert!(m.contains("# TYPE prometheus_sd_kubernetes_failures_total counter\nprometheus_sd_kubernetes_failures_total "));
    assert_eq!(counted("endpoints", "pods"), Some((4, false)));
    assert_eq!(counted("endpointslice", "pods"), None);
    assert_eq!(counted("endpointslice", "services"), Some((5, true)));
    assert_eq!(counted("pod", "pods"), Some((4, true)));
    assert_eq!(counted("pod", "nodes"), None);
}

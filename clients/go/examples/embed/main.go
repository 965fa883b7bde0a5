// A vendor's software checks its version once, at startup.
package main

import (
	"context"
	"log"
	"os"

	vcheckd "github.com/vcheckd/vcheckd/clients/go"
)

// The zone's public key, from `vcheckd keygen --public` (not a secret).
const zoneKey = "vck2-public:7:2543b92ff1095511476adc8369db6ddc933665a11978dda1404ee1066ca9559d"

func main() {
	key, err := vcheckd.ParsePublicKey(zoneKey)
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	client, err := vcheckd.New(vcheckd.Config{Zone: "vc.example.com", Key: key, Version: "2.3.1",
		ClusterID: "3f2b8c1e-9d4a-4e6b-8f0c-5a7d2e1b9c34", NodeID: host})
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Check(context.Background())
	if err != nil {
		log.Printf("version check: %v", err) // never fatal: the product runs on
		return
	}
	log.Printf("version check: %s: %s", res.Status, res.Message)
}

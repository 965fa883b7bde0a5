// A long-running service checks daily in the background, writes a status
// file for its GUI and a textfile for node_exporter, checks again on SIGHUP
// and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	vcheckd "github.com/vcheckd/vcheckd/clients/go"
)

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
	agent, err := vcheckd.NewAgent(client, vcheckd.AgentConfig{
		StatusFile: "/var/lib/myproduct/version-status.json",
		TextFile:   "/var/lib/node_exporter/textfile_collector/myproduct_version.prom",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			agent.CheckNow()
		}
	}()
	if err := agent.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

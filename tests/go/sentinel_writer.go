// INCRs a counter on the master that go-redis v5's failover client finds by
// asking the group's members as Sentinels; prints every acknowledged value.
//
// Usage: sentinel_writer GROUP KEY PORT...   (members on 127.0.0.1)
package main

import (
	"bufio"
	"fmt"
	"os"
	"time"

	"gopkg.in/redis.v5"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: sentinel_writer GROUP KEY PORT...")
		os.Exit(2)
	}
	group, key, ports := os.Args[1], os.Args[2], os.Args[3:]
	var members []string
	for _, port := range ports {
		members = append(members, "127.0.0.1:"+port)
	}
	// Short timeouts and no retries: every failure goes back to the
	// Sentinels at once, as a timing test needs.
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    group,
		SentinelAddrs: members,
		DialTimeout:   500 * time.Millisecond,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
		MaxRetries:    0,
	})
	out := bufio.NewWriter(os.Stdout)
	for {
		value, err := client.Incr(key).Result()
		if err != nil { // every failure: the pool dials the master the Sentinels name
			fmt.Fprintf(os.Stderr, "%T: %v\n", err, err)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		fmt.Fprintln(out, value)
		out.Flush()
	}
}
